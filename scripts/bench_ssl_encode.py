"""Side-by-side benchmark of the discrete-SSL tokenizer's encoding, and its memory profile.

(1) **Encode** against speechbrain's ``DiscreteSSL`` path, with the same weights (a randomly
    initialised model with microsoft/wavlm-large's geometry: 24 x 1024, 16 heads, 512-channel
    conv front end), the same centroids (K = 1000 per layer, drawn from the model's own
    features of another clip) and the same 16-second utterance. speechbrain's classes are
    used where they run offline: its ``WavLM`` wrapper loads the saved folder, and its
    ``DiscreteSSL.encode`` runs unchanged (full forward with every hidden state, then
    scikit-learn ``MiniBatchKMeans.predict`` on CPU per layer). Only ``DiscreteSSL.__init__``
    is bypassed, because it downloads the k-means files and a vocoder from the hub; its
    attributes are set from the same quantizers exported with
    :func:`benchmark.models.sb_quantizers.export_sb_quantizer` and loaded with ``joblib``,
    as speechbrain does. Targets: identical tokens; ours no slower on CPU and >= 5x faster
    on a GPU (median of ``--runs`` timed runs after a warm-up, runs alternating).
    Also reports the agreement of ``dtype=bf16`` tokens with fp32 tokens per layer.
(2) **Mini corpus** (``--mini-corpus``): encode time of the mini ``asr`` subset (~1 h) with
    the mini preset's tiny WavLM through the harness path, k-means fit time on ``ood``, and
    how many tokens differ between batched and one-at-a-time encoding.
(3) **Memory**: in one subprocess per size, tokens of a synthetic corpus of N and 4N
    utterances are extracted through ``TokenCache.build`` + ``iter_audio_batches`` (the
    harness's extraction path) with the tiny model; peak RSS of both and their ratio.

Usage::

    python scripts/bench_ssl_encode.py                  # (1) and (3) on CPU (+ CUDA if any)
    python scripts/bench_ssl_encode.py --mini-corpus    # also (2) (needs espeak-ng)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never touch the network

import torch

from benchmark.api import BuildContext, FitData
from benchmark.conformance import synthetic_batch
from benchmark.models.kmeans import KMeansQuantizer
from benchmark.models.ssl_features import SSLLayerExtractor
from benchmark.profiling import reset_peak_rss, rss_mib, timed
from benchmark.tokenizers.discrete_ssl import DiscreteSSLTokenizer

log = logging.getLogger("bench_ssl_encode")
LAYERS = (3, 7, 12, 18, 23)
GPU_TARGET = 5.0
MEMORY_TARGET = 1.1


# ----------------------------------------------------------------------------- helpers


def wavlm_large_folder(root: Path, seed: int = 0) -> Path:
    """A random model with microsoft/wavlm-large's geometry, saved once with save_pretrained."""
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMModel

    folder = root / f"wavlm-large-random-{seed}"
    if (folder / "DONE").is_file():
        return folder
    config = WavLMConfig(
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        conv_dim=(512,) * 7,
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_bias=False,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        num_conv_pos_embeddings=128,
        num_conv_pos_embedding_groups=16,
        num_buckets=320,
        max_bucket_distance=800,
        layer_norm_eps=1e-5,
    )
    log.info("creating a random WavLM-large (%s)", folder)
    torch.manual_seed(seed)
    WavLMModel(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(
        sampling_rate=16000, do_normalize=True, return_attention_mask=True
    ).save_pretrained(folder)
    (folder / "DONE").write_text("ok\n")
    return folder


def random_quantizers(
    tokenizer: DiscreteSSLTokenizer, k: int, seed: int = 1
) -> list[KMeansQuantizer]:
    """K centroids per layer: frames of another clip's features, plus a little noise."""
    wav, lengths = synthetic_batch(16000, seed=seed, durations=(2.0 * k / 100 + 1.0,))
    features, frames = tokenizer.extractor(wav, lengths)
    g = torch.Generator().manual_seed(seed)
    quantizers = []
    for index, layer in enumerate(tokenizer.layers):
        frames_l = features[index, 0, : int(frames[0])].cpu()
        rows = torch.randperm(frames_l.shape[0], generator=g)[:k]
        noise = torch.randn(k, frames_l.shape[1], generator=g) * 0.05 * frames_l.std()
        provenance = {"encoder": tokenizer.model_info.encoder_id, "layer": layer}
        quantizers.append(KMeansQuantizer(frames_l[rows] + noise, provenance))
    return quantizers


def speechbrain_discrete_ssl(folder: Path, quantizers, layers, device: str, scratch: Path):
    """speechbrain's DiscreteSSL over its WavLM wrapper, with our quantizers as its k-means."""
    import joblib
    from speechbrain.integrations.audio_tokenizers.discrete_ssl import DiscreteSSL
    from speechbrain.integrations.huggingface.wavlm import WavLM
    from speechbrain.tokenizers.discrete_SSL_tokenizer import (
        DiscreteSSLTokenizer as SBTokenizer,
    )
    from torch import nn

    from benchmark.models.sb_quantizers import export_sb_quantizer

    ssl = WavLM(str(folder), str(scratch / "sb"), output_all_hiddens=True, freeze=True)
    ssl = ssl.to(device)
    files = [export_sb_quantizer(q, scratch / "kmeans", "Bench", "wavlm") for q in quantizers]
    model = DiscreteSSL.__new__(DiscreteSSL)  # __init__ would download from the hub
    nn.Module.__init__(model)
    model.device = device
    model.ssl_model = ssl
    model.check_if_input_is_compatible(list(layers), quantizers[0].n_clusters)
    # float64 centres (our float32 centroids, widened exactly), as DiscreteSSL.encode needs
    model.kmeans_models = [joblib.load(f) for f in files]
    model.ssl_layer_ids = tuple(layers)
    model.num_clusters = tuple(q.n_clusters for q in quantizers)
    model.vocabularies = [m.cluster_centers_ for m in model.kmeans_models]
    model.tokenizer = SBTokenizer(model.num_clusters)
    model.sample_rate = 16000
    return model


# ----------------------------------------------------------------------------- (1) encode


def bench_encode(args: argparse.Namespace, device: str, rows: list[dict]) -> bool:
    folder = wavlm_large_folder(args.workdir)
    context = BuildContext(device=device, workdir=args.workdir, weights={"path": str(folder)})
    ours = DiscreteSSLTokenizer(
        family="wavlm", layers=LAYERS, num_clusters=args.k, context=context, name="ours"
    )
    quantizers = random_quantizers(ours, args.k)
    ours.set_quantizers(quantizers)
    sb = speechbrain_discrete_ssl(folder, quantizers, LAYERS, device, args.workdir)
    wav, lengths = synthetic_batch(16000, seed=2, durations=(args.seconds,))
    wav_dev = wav.to(device)

    def run_ours():
        return ours.encode(wav, lengths)[0]

    def run_sb():
        with torch.no_grad():
            return sb.encode(wav_dev, None, SSL_layers=list(LAYERS))[0]

    ours_tokens, sb_tokens = run_ours(), run_sb().cpu()  # warm-up
    refined = ours.codebooks.refined / max(1, ours.codebooks.assigned * len(LAYERS))
    same = ours_tokens.shape == sb_tokens.shape and torch.equal(ours_tokens, sb_tokens)
    differing = (
        int((ours_tokens != sb_tokens).sum()) if ours_tokens.shape == sb_tokens.shape else -1
    )
    runs_ours, runs_sb = [], []
    for _ in range(args.runs):  # alternating, so load changes hit both paths alike
        runs_ours.append(timed(run_ours, device))
        runs_sb.append(timed(run_sb, device))
    times_ours, times_sb = [w for w, _ in runs_ours], [w for w, _ in runs_sb]
    t_ours, t_sb = statistics.median(times_ours), statistics.median(times_sb)
    cpu_ours = statistics.median(c for _, c in runs_ours)
    cpu_sb = statistics.median(c for _, c in runs_sb)
    ratio = t_sb / t_ours
    target = GPU_TARGET if device.startswith("cuda") else 1.0
    rows.append(
        {
            "device": device,
            "audio_s": args.seconds,
            "frames": int(ours_tokens.shape[1]),
            "ours_s": t_ours,
            "speechbrain_s": t_sb,
            "speedup": ratio,
            "target": target,
            "identical": same,
            "differing_tokens": differing,
            "refined_share": refined,
            "cpu_ours_s": cpu_ours,
            "cpu_speechbrain_s": cpu_sb,
            "runs_ours": times_ours,
            "runs_speechbrain": times_sb,
        }
    )
    if not args.no_bf16:
        bf16 = SSLLayerExtractor(ours.model, ours.model_info, LAYERS, dtype="bf16")
        features, frames = bf16(wav, lengths)
        ids = ours.assign(features[:, 0, : int(frames[0])])
        agree = (ids.cpu() == ours_tokens[0]).float().mean(dim=0)
        rows[-1]["bf16_agreement"] = {
            str(layer): float(a) for layer, a in zip(LAYERS, agree, strict=True)
        }
    return same and ratio >= target


# ----------------------------------------------------------------------------- (2) mini corpus


def bench_mini_corpus(args: argparse.Namespace) -> dict:
    from benchmark.cache import TokenCache
    from benchmark.data.audio import load_audio
    from benchmark.data.batching import iter_audio_batches
    from benchmark.data.mini import MiniConfig, mini_manifest, prepare_mini

    corpus = prepare_mini(args.workdir / "data", MiniConfig(), progress=False)
    context = BuildContext(workdir=args.workdir, progress=False)
    tokenizer = DiscreteSSLTokenizer(tiny_model=True, num_clusters=128, context=context)
    ood = mini_manifest(corpus, "ood", "train")
    fit_dir = args.workdir / "mini-fit"
    fit_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    tokenizer.fit(
        FitData("mini/ood/train", lambda: iter_audio_batches(ood, 16000), len(ood)), fit_dir
    )
    fit_s = time.perf_counter() - start
    tokenizer.load_fitted(fit_dir)
    out: dict = {"fit_ood_s": fit_s, "threads": torch.get_num_threads(), "splits": {}}
    cache = TokenCache(args.workdir / "mini-tokens")
    for split in ("train", "valid", "test"):
        manifest = mini_manifest(corpus, "asr", split)
        wall, cpu = time.perf_counter(), time.process_time()
        built = cache.build(
            tokenizer, f"bench-{time.time()}", manifest, iter_audio_batches(manifest, 16000)
        )
        out["splits"][split] = {
            "hours": manifest.total_duration / 3600,
            "wall_s": time.perf_counter() - wall,
            "cpu_s": time.process_time() - cpu,
        }
        if split == "valid":  # batched vs one utterance at a time
            differing = total = 0
            for utterance, tokens in built.items():
                audio = load_audio(manifest.audio_path(utterance), 16000)
                alone, _ = tokenizer.encode(audio.unsqueeze(0), torch.tensor([audio.shape[0]]))
                differing += int((alone[0, : len(tokens)].numpy() != tokens).any(axis=1).sum())
                total += len(tokens)
            out["batched_vs_alone"] = {"frames": total, "differing_frames": differing}
    return out


# ----------------------------------------------------------------------------- (3) memory


def make_corpus(folder: Path, count: int, seed: int = 0):
    """``count`` synthetic utterances of 2-5 s (WAV files) and their manifest."""
    from benchmark.data.audio import save_wav
    from benchmark.data.manifest import Utterance, read_manifest, write_manifest

    manifest_path = folder / "manifest.jsonl"
    if not manifest_path.is_file():
        g = torch.Generator().manual_seed(seed)
        utterances = []
        for i in range(count):
            duration = 2.0 + 3.0 * float(torch.rand((), generator=g))
            wav, _ = synthetic_batch(16000, seed=seed * 100000 + i, durations=(duration,))
            save_wav(folder / f"u{i:05d}.wav", wav[0], 16000)
            utterances.append(Utterance(f"u{i:05d}", f"u{i:05d}.wav", wav.shape[1] / 16000, 16000))
        write_manifest(manifest_path, utterances)
    return read_manifest(manifest_path)


def memory_worker(args: argparse.Namespace) -> None:
    """Subprocess body: extract tokens of a corpus, print peak RSS (MiB) as JSON."""
    from benchmark.cache import TokenCache
    from benchmark.data.batching import iter_audio_batches

    manifest = make_corpus(args.workdir / f"mem-corpus-{args.memory_worker}", args.memory_worker)
    context = BuildContext(workdir=args.workdir, progress=False)
    tokenizer = DiscreteSSLTokenizer(tiny_model=True, num_clusters=32, context=context)
    fit_dir = args.workdir / "mem-fit"
    fit_dir.mkdir(parents=True, exist_ok=True)

    def fit_batches():
        yield synthetic_batch(16000, seed=7, durations=(3.0, 2.5, 2.0))

    tokenizer.fit(FitData("synthetic", fit_batches, 3), fit_dir)
    tokenizer.load_fitted(fit_dir)
    before = rss_mib("VmRSS") or 0.0
    reset = reset_peak_rss()  # so the peak is the extraction's, not the imports'
    start = time.perf_counter()
    split = TokenCache(args.workdir / "mem-tokens").build(
        tokenizer,
        f"mem-{args.memory_worker}-{time.time()}",
        manifest,
        iter_audio_batches(manifest, 16000),
    )
    peak = rss_mib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "utterances": len(manifest),
                "hours": manifest.total_duration / 3600,
                "frames": int(split.lengths.sum()),
                "rss_before_mib": before,
                "peak_is_extraction_only": reset,
                "peak_mib": peak,
                "seconds": time.perf_counter() - start,
            }
        )
    )


def bench_memory(args: argparse.Namespace, malloc_env: dict[str, str]) -> list[dict]:
    """Peak RSS of extracting N and 4N utterances, each in a fresh subprocess."""
    results = []
    for count in (args.memory_utterances, 4 * args.memory_utterances):
        make_corpus(args.workdir / f"mem-corpus-{count}", count)  # audio written beforehand
        command = [sys.executable, __file__, "--memory-worker", str(count)]
        command += ["--workdir", str(args.workdir)]
        env = {**os.environ, **malloc_env}
        done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"memory worker failed:\n{done.stderr[-3000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return results


#: glibc's default raises its mmap threshold as large blocks are freed, after which freed
#: tensor memory stays in the heap: RSS creeps up over the first batches, then plateaus. A
#: fixed threshold returns it to the system at once; both are measured.
MALLOC_MODES: dict[str, dict[str, str]] = {
    "glibc default": {},
    "MALLOC_MMAP_THRESHOLD_=131072": {"MALLOC_MMAP_THRESHOLD_": "131072"},
}


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="auto: CPU, then CUDA when available",
    )
    parser.add_argument("--seconds", type=float, default=16.0, help="utterance length (s)")
    parser.add_argument("--k", type=int, default=1000, help="centroids per layer")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per path")
    parser.add_argument("--memory-utterances", type=int, default=100)
    parser.add_argument("--workdir", type=Path, default=Path("work/bench-ssl"))
    parser.add_argument("--skip-encode", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--mini-corpus", action="store_true", help="also run (2)")
    parser.add_argument("--no-bf16", action="store_true", help="skip the bf16 agreement")
    parser.add_argument("--memory-worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.memory_worker:
        memory_worker(args)
        return 0
    ok = True
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    if not args.skip_encode:
        devices = ["cpu", "cuda"] if args.device == "auto" else [args.device]
        devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
        rows: list[dict] = []
        for device in devices:
            ok &= bench_encode(args, device, rows)
        print(f"\n(1) encode, WavLM-large geometry (random), layers {list(LAYERS)}, K = {args.k}")
        print(
            f"{'device':8}{'audio':>7}{'ours s':>10}{'sb s':>10}{'speedup':>9}{'target':>8}  tokens"
        )
        for r in rows:
            same = "identical" if r["identical"] else f"{r['differing_tokens']} differ"
            print(
                f"{r['device']:8}{r['audio_s']:>6.0f}s{r['ours_s']:>10.3f}{r['speechbrain_s']:>10.3f}"
                f"{r['speedup']:>8.2f}x{r['target']:>7.1f}x  {same} ({r['frames']} x {len(LAYERS)})"
            )
            status = "PASS" if r["identical"] and r["speedup"] >= r["target"] else "FAIL"
            print(
                f"{status} encode on {r['device']}: tokens {same}, {r['speedup']:.2f}x "
                f"(target >= {r['target']:.1f}x); runs ours {[round(t, 3) for t in r['runs_ours']]}"
                f" speechbrain {[round(t, 3) for t in r['runs_speechbrain']]}"
            )
            print(
                f"INFO CPU time per encode (median): ours {r['cpu_ours_s']:.2f} s, speechbrain "
                f"{r['cpu_speechbrain_s']:.2f} s ({r['cpu_speechbrain_s'] / r['cpu_ours_s']:.2f}x)"
            )
            print(f"INFO near ties re-scored in float64: {100 * r['refined_share']:.3f}% of frames")
            if "bf16_agreement" in r:
                agreement = ", ".join(
                    f"L{k} {100 * v:.1f}%" for k, v in r["bf16_agreement"].items()
                )
                print(f"INFO bf16 vs fp32 token agreement on {r['device']}: {agreement}")
    if args.mini_corpus:
        mini = bench_mini_corpus(args)
        hours = sum(s["hours"] for s in mini["splits"].values())
        wall = sum(s["wall_s"] for s in mini["splits"].values())
        cpu = sum(s["cpu_s"] for s in mini["splits"].values())
        diff = mini["batched_vs_alone"]
        print(
            f"\n(2) mini corpus, tiny WavLM, {mini['threads']} threads: k-means fit on ood "
            f"{mini['fit_ood_s']:.1f} s; encode asr ({hours:.2f} h) {wall:.1f} s wall, "
            f"{cpu:.1f} s CPU; batched vs alone: {diff['differing_frames']} of "
            f"{diff['frames']} frames differ"
        )
    if not args.skip_memory:
        print("\n(3) memory: token extraction through TokenCache.build (tiny WavLM), peak RSS")
        print(
            f"{'allocator':32}{'utterances':>11}{'hours':>8}{'frames':>9}{'RSS before':>12}"
            f"{'peak':>8}{'s':>7}"
        )
        verdicts = []
        for mode, env in MALLOC_MODES.items():
            small, large = bench_memory(args, env)
            for r in (small, large):
                print(
                    f"{mode:32}{r['utterances']:>11}{r['hours']:>8.3f}{r['frames']:>9}"
                    f"{r['rss_before_mib']:>10.0f}Mi{r['peak_mib']:>6.0f}Mi{r['seconds']:>7.1f}"
                )
            ratio = large["peak_mib"] / small["peak_mib"]
            scope = "during extraction" if small["peak_is_extraction_only"] else "of the process"
            status = "PASS" if ratio <= MEMORY_TARGET else "FAIL"
            ok &= ratio <= MEMORY_TARGET
            verdicts.append(
                f"{status} memory ({mode}): peak RSS {scope}, 4x / 1x = {ratio:.3f} "
                f"(target <= {MEMORY_TARGET})"
            )
        print("\n".join(verdicts))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
