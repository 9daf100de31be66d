"""Derived views of a corpus split: the clean twins of a noisy/clean pair manifest.

Enhancement corpora (VoiceBank-DEMAND, the mini ``enhance`` subset) list the noisy file as
each utterance's ``path`` and its clean twin as ``extra.clean_path``. A task that needs the
tokens of both names the clean side as subset ``<subset>:clean``; the harness resolves the
base split and swaps the paths, so the clean view is a split like any other: encoded once,
cached, fingerprinted with its own audio bytes.
"""

from __future__ import annotations

import dataclasses

from benchmark.data.manifest import Manifest
from benchmark.errors import DataError

#: Suffix of a subset name that selects the clean twins of a pair manifest.
CLEAN_SUFFIX = ":clean"


def split_view(subset: str) -> tuple[str, str | None]:
    """``"enhance:clean"`` -> ``("enhance", "clean")``; ``"asr"`` -> ``("asr", None)``."""
    if subset.endswith(CLEAN_SUFFIX):
        return subset[: -len(CLEAN_SUFFIX)], "clean"
    return subset, None


def clean_view(manifest: Manifest) -> Manifest:
    """The clean twins of a noisy/clean manifest, in the same order and with the same ids.

    Each utterance's ``path`` becomes its ``extra.clean_path`` and ``extra.noisy_path`` keeps
    the noisy file's path, both as the manifest gives them (relative to its root, or
    absolute); the view keeps the manifest's root.

    Raises:
        DataError: an utterance has no ``extra.clean_path`` (names it and the manifest).
    """
    utterances = []
    for utterance in manifest:
        clean = utterance.extra.get("clean_path")
        if not clean:
            raise DataError(
                f"{manifest.source}: utterance {utterance.id!r} has no extra.clean_path; a "
                "':clean' view needs a noisy/clean pair manifest"
            )
        # paths stay as the manifest gives them (relative to its root, or absolute), so the
        # view's key does not depend on where the corpus is mounted or on a relative workdir
        extra = {**utterance.extra, "noisy_path": utterance.path}
        utterances.append(dataclasses.replace(utterance, path=str(clean), extra=extra))
    source = (
        manifest.source.with_name(manifest.source.stem + ".clean.jsonl")
        if (manifest.source)
        else None
    )
    return Manifest(tuple(utterances), root=manifest.root, source=source)
