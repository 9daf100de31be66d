"""Which corpus recipe serves a task: ``mini`` (synthetic, offline) or a real corpus folder."""

from __future__ import annotations

from pathlib import Path

from benchmark.api import BuildContext
from benchmark.data.manifest import Manifest
from benchmark.errors import DataError

CORPORA = ("mini", "librispeech")


def corpus_manifest(corpus: str, subset: str, split: str, context: BuildContext) -> Manifest:
    """The manifest of one split of a corpus subset, preparing the corpus first if needed.

    Args:
        corpus: recipe name (``mini`` or ``librispeech``).
        subset: the corpus part a task uses (``asr``, ``speaker``, ``style``, ...;
            ``librispeech`` for LibriSpeech).
        split: ``train``, ``valid`` or ``test`` (mini); a LibriSpeech split name
            (``train-clean-100``, ``dev-clean``, ``test-clean``, ...).
        context: where the data lives (``workdir``/``data_root``) and the seed.

    Raises:
        DataError: an unknown corpus, subset or split.
    """
    if corpus == "mini":
        from benchmark.data.mini import MiniConfig, mini_manifest, prepare_mini

        config = MiniConfig(seed=0, scale=context.corpus_scale)
        folder = prepare_mini(Path(context.workdir) / "data", config, progress=context.progress)
        return mini_manifest(folder, subset, split)
    if corpus == "librispeech":
        from benchmark.data.librispeech import librispeech_manifest

        if subset != "librispeech":
            raise DataError(f"unknown LibriSpeech subset {subset!r}; use subset: librispeech")
        cache_dir = Path(context.workdir) / "manifests"
        return librispeech_manifest(context.data_root, split, cache_dir, progress=context.progress)
    raise DataError(
        f"unknown corpus {corpus!r}; available: {', '.join(CORPORA)} "
        "(real corpora arrive with their task issues)"
    )
