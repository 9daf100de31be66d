"""What each metric measures, for the page's definitions table.

Judges and directions are read from the records (each metric stores them); this module only
says in words what a metric is. A metric a plugin adds without a definition here is listed
with "no definition given" rather than left out.
"""

from __future__ import annotations

from benchmark.profiles import PROFILE_METRICS
from benchmark.token_stats import STATS_METRICS

TASK_METRICS: dict[str, str] = {
    "wer": "word error rate of the transcripts against the references, in % (jiwer; "
    "total edits / total reference words)",
    "cer": "character error rate, in % (jiwer; total character edits / reference characters)",
    "accuracy": "share of test utterances whose label is predicted correctly, in %",
    "dnsmos": "DNSMOS P.835 overall quality predicted by the DNSMOS judge (1-5)",
    "dnsmos_sig": "DNSMOS P.835 speech-signal quality (SIG) of the output, no reference (1-5)",
    "dnsmos_bak": "DNSMOS P.835 background-noise quality (BAK) of the output (1-5)",
    "dnsmos_ovrl": "DNSMOS P.835 overall quality (OVRL) of the output (1-5)",
    "dnsmos_p808": "DNSMOS P.808 overall MOS of the output (1-5)",
    "dcer": "CER of an ASR judge's transcript of the output against that of the reference, "
    "in % (dWER on characters, for weak recognisers)",
    "utmos": "UTMOS naturalness predicted by the UTMOS judge (1-5)",
    "pesq": "PESQ wide-band perceptual quality against the clean reference (-0.5-4.5)",
    "stoi": "short-time objective intelligibility against the clean reference (0-1)",
    "estoi": "extended STOI against the clean reference (0-1)",
    "dwer": "WER of an ASR judge's transcript of the output against that of the reference, in %",
    "speaker_similarity": "cosine similarity of speaker embeddings of output and reference",
    "mel_distance": "L1 distance between log-mel spectrograms of output and reference",
    "sisdr": "scale-invariant signal-to-distortion ratio against the clean reference, in dB",
}


def define(metric: str) -> str:
    """The definition of ``metric`` (split suffixes such as ``wer_test-other`` included)."""
    if metric in TASK_METRICS:
        return TASK_METRICS[metric]
    if metric in PROFILE_METRICS:
        text, unit = PROFILE_METRICS[metric]
        return f"{text} ({unit})"
    if metric in STATS_METRICS:
        return STATS_METRICS[metric]
    base, _, split = metric.partition("_")
    if split and base in TASK_METRICS:
        return f"{TASK_METRICS[base]}; on the {split} test set"
    return "no definition given by the task or plugin that reports it"
