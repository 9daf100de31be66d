"""The corpus registry: every corpus recipe behind one name, and a user's own JSONL corpus.

A task or a k-means fit names its data as a :class:`~benchmark.api.DataRef` (corpus, subset,
split); :func:`resolve_data` finds the recipe by name and returns the split's manifest,
preparing the corpus first when the recipe synthesises it. Recipes:

- ``mini``: the synthetic espeak-ng corpus (:mod:`benchmark.data.mini`), built once;
- ``librispeech``: LibriSpeech under ``--data-root`` (:mod:`benchmark.data.librispeech`);
- ``ljspeech``, ``libritts``: TTS corpora under ``--data-root`` (:mod:`benchmark.data.tts_corpora`);
- ``iemocap``: IEMOCAP_full_release under ``--data-root``, 4 emotion classes
  (:mod:`benchmark.data.iemocap`);
- ``voxceleb1``: VoxCeleb1 identification under ``--data-root`` (:mod:`benchmark.data.voxceleb`);
- ``manifest``: your own data, a folder holding ``train.jsonl`` / ``valid.jsonl`` /
  ``test.jsonl`` manifests (:mod:`benchmark.data.manifest`; audio paths relative to that
  folder), named by ``subset`` (e.g. ``corpus: manifest, subset: /data/my-corpus``).

More recipes register with :func:`register_corpus`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.api import BuildContext, DataRef
from benchmark.data.manifest import Manifest, read_manifest
from benchmark.errors import DataError


@dataclass(frozen=True)
class Corpus:
    """A corpus recipe.

    Attributes:
        name: registry name (``DataRef.corpus``).
        description: one line.
        manifest: ``(subset, split, context) -> Manifest``; prepares the corpus if needed.
        synthesised: True when the harness builds the corpus itself (a ``prepare`` step).
        is_prepared: ``context -> bool``: whether ``manifest`` can run without building.
        identity: ``context -> dict``: what the built corpus depends on (its step key).
        prepare: ``context -> None``: build the corpus (synthesised corpora only).
    """

    name: str
    description: str
    manifest: Callable[[str, str, BuildContext], Manifest]
    synthesised: bool = False
    is_prepared: Callable[[BuildContext], bool] = lambda context: True
    identity: Callable[[BuildContext], dict[str, Any]] = lambda context: {}
    prepare: Callable[[BuildContext], None] | None = None


CORPORA: dict[str, Corpus] = {}


def register_corpus(corpus: Corpus) -> None:
    """Add a recipe; a name registered twice is an error."""
    if corpus.name in CORPORA:
        raise DataError(f"corpus {corpus.name!r} is registered twice")
    CORPORA[corpus.name] = corpus


def get_corpus(name: str) -> Corpus:
    """The recipe of a corpus name, or a DataError naming the known ones."""
    try:
        return CORPORA[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(CORPORA), n=2, cutoff=0.5)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise DataError(
            f"unknown corpus {name!r}{hint} (known: {', '.join(sorted(CORPORA))})"
        ) from None


def resolve_data(ref: DataRef, context: BuildContext) -> Manifest:
    """The manifest of one corpus split, preparing the corpus first if needed.

    A subset ``<subset>:clean`` is the clean-twin view of a noisy/clean pair split
    (:mod:`benchmark.data.views`).
    """
    from benchmark.data.views import clean_view, split_view

    subset, view = split_view(ref.subset)
    manifest = get_corpus(ref.corpus).manifest(subset, ref.split, context)
    return clean_view(manifest) if view == "clean" else manifest


def corpus_manifest(corpus: str, subset: str, split: str, context: BuildContext) -> Manifest:
    """:func:`resolve_data` with the three names spelled out."""
    return resolve_data(DataRef(corpus, subset, split), context)


# ----------------------------------------------------------------------------- recipes


def _mini_config(context: BuildContext):
    from benchmark.data.mini import MiniConfig

    return MiniConfig(seed=0, scale=context.corpus_scale)


def _mini_prepare(context: BuildContext) -> Path:
    from benchmark.data.mini import prepare_mini

    return prepare_mini(
        Path(context.workdir) / "data", _mini_config(context), progress=context.progress
    )


def _mini_manifest(subset: str, split: str, context: BuildContext) -> Manifest:
    from benchmark.data.mini import mini_manifest

    return mini_manifest(_mini_prepare(context), subset, split)


def _mini_prepared(context: BuildContext) -> bool:
    from benchmark.data.mini import corpus_name, is_complete

    config = _mini_config(context)
    return is_complete(Path(context.workdir) / "data" / corpus_name(config), config)


def _mini_identity(context: BuildContext) -> dict[str, Any]:
    from benchmark.data.mini import corpus_name

    return {"corpus": corpus_name(_mini_config(context))}


def _librispeech_manifest(subset: str, split: str, context: BuildContext) -> Manifest:
    from benchmark.data.librispeech import librispeech_manifest

    if subset != "librispeech":
        raise DataError(f"unknown LibriSpeech subset {subset!r}; use subset: librispeech")
    cache_dir = Path(context.workdir) / "manifests"
    return librispeech_manifest(context.data_root, split, cache_dir, progress=context.progress)


def _ljspeech_manifest(subset: str, split: str, context: BuildContext) -> Manifest:
    from benchmark.data.tts_corpora import ljspeech_manifest

    return ljspeech_manifest(subset, split, context)


def _libritts_manifest(subset: str, split: str, context: BuildContext) -> Manifest:
    from benchmark.data.tts_corpora import libritts_manifest

    return libritts_manifest(subset, split, context)


def _voicebank_manifest(subset: str, split: str, context: BuildContext) -> Manifest:
    from benchmark.data.voicebank import voicebank_manifest

    if subset != "voicebank":
        raise DataError(f"unknown VoiceBank-DEMAND subset {subset!r}; use subset: voicebank")
    cache_dir = Path(context.workdir) / "manifests"
    return voicebank_manifest(context.data_root, split, cache_dir, progress=context.progress)


def _iemocap_manifest(subset: str, split: str, context: BuildContext) -> Manifest:
    from benchmark.data.iemocap import iemocap_manifest

    return iemocap_manifest(subset, split, context)


def _voxceleb1_manifest(subset: str, split: str, context: BuildContext) -> Manifest:
    from benchmark.data.voxceleb import voxceleb1_manifest

    return voxceleb1_manifest(subset, split, context)


def _own_manifest(subset: str, split: str, context: BuildContext) -> Manifest:
    folder = Path(subset).expanduser()
    if not folder.is_absolute() and context.data_root is not None:
        folder = Path(context.data_root) / folder
    path = folder / f"{split}.jsonl"
    if not path.is_file():
        raise DataError(
            f"{path}: manifest not found; corpus 'manifest' reads <subset>/<split>.jsonl "
            "(one JSON utterance per line: id, path, duration, sample_rate, ...)"
        )
    return read_manifest(path)


register_corpus(
    Corpus(
        "mini",
        "synthetic espeak-ng speech for every task (offline, built once)",
        _mini_manifest,
        synthesised=True,
        is_prepared=_mini_prepared,
        identity=_mini_identity,
        prepare=_mini_prepare,
    )
)
register_corpus(
    Corpus("librispeech", "LibriSpeech under --data-root (standard layout)", _librispeech_manifest)
)
register_corpus(Corpus("ljspeech", "LJSpeech-1.1 under --data-root", _ljspeech_manifest))
register_corpus(Corpus("libritts", "LibriTTS under --data-root", _libritts_manifest))
register_corpus(
    Corpus("voicebank", "VoiceBank-DEMAND (28 speakers) under --data-root", _voicebank_manifest)
)
register_corpus(
    Corpus("iemocap", "IEMOCAP_full_release under --data-root (4 emotions)", _iemocap_manifest)
)
register_corpus(
    Corpus("voxceleb1", "VoxCeleb1 identification under --data-root", _voxceleb1_manifest)
)
register_corpus(
    Corpus("manifest", "your own corpus: <subset>/<split>.jsonl manifests", _own_manifest)
)
