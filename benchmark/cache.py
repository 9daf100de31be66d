"""The token cache: each (tokenizer fingerprint, manifest) is encoded once and reused.

On disk, one folder per entry under ``<workdir>/tokens/<tokenizer fp[:16]>/<manifest fp[:16]>``:

- ``tokens.bin``: every utterance's ``[N_i, K]`` tokens concatenated along frames, in the
  smallest unsigned integer type that holds the largest codebook (uint8 / uint16 / uint32),
  or ``[N_i, K, D]`` float16 features for a continuous reference;
- ``index.npz``: ``ids`` (utterance ids), ``offsets`` and ``lengths`` (frames) per utterance;
- ``meta.json``: dtype, K, codebook sizes, both keys, counts, and the size and sha256 of
  ``tokens.bin``; written last.

The folder is built under a temporary name unique to the writing process and renamed into
place (:func:`benchmark.pipeline.store.atomic_folder`), so a killed extraction leaves no entry
that looks finished and never removes another process's live build. Tokens are written to
disk batch by batch, so memory does not grow with the corpus. Opening an entry checks the
size of ``tokens.bin`` every time and its sha256 once per process; a damaged entry (garbage
bytes, truncated file, unreadable ``meta.json``) is reported and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchmark.data.manifest import Manifest, Utterance
from benchmark.errors import ContractError
from benchmark.pipeline.store import atomic_folder
from benchmark.profiling import release_freed_memory

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from benchmark.api import Tokenizer

log = logging.getLogger(__name__)
#: 2: keys from the step graph (code, libraries, audio bytes) and a checksum of the tokens.
CACHE_FORMAT = 2
_VERIFIED: set[str] = set()


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def smallest_dtype(codebook_sizes: tuple[int, ...]) -> np.dtype:
    """The smallest unsigned integer dtype holding ids ``0 .. max(C) - 1``."""
    largest = max(codebook_sizes) - 1
    for dtype in (np.uint8, np.uint16, np.uint32):
        if largest <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.uint64)


@dataclass
class TokenSplit:
    """Cached tokens of one manifest, memory-mapped.

    Attributes:
        manifest: the utterances (with their supervision).
        ids: utterance ids, in cache order.
        offsets: ``[U]`` first frame of each utterance in ``data``.
        lengths: ``[U]`` frames per utterance.
        data: ``[total_frames, K]`` memory-mapped ids (``[total_frames, K, D]`` float16
            features for a continuous reference).
        codebook_sizes: ``C_k`` per codebook.
    """

    manifest: Manifest
    ids: list[str]
    offsets: np.ndarray
    lengths: np.ndarray
    data: np.ndarray
    codebook_sizes: tuple[int, ...]
    path: Path

    def __post_init__(self) -> None:
        self._row = {utt_id: i for i, utt_id in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, utt_id: str) -> np.ndarray:
        """``[N, K]`` tokens of one utterance (a view into the memory map)."""
        row = self._row[utt_id]
        start = int(self.offsets[row])
        return self.data[start : start + int(self.lengths[row])]

    def items(self) -> Iterator[tuple[Utterance, np.ndarray]]:
        """``(utterance, tokens [N, K])`` in manifest order."""
        for utterance in self.manifest:
            yield utterance, self[utterance.id]


class TokenCache:
    """Folders of cached tokens keyed by (encoder key, manifest key) from the step graph."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def entry_dir(self, encoder_key: str, manifest_key: str) -> Path:
        """Folder of one cache entry."""
        return self.root / encoder_key[:16] / manifest_key[:16]

    def read_meta(self, folder: Path) -> dict | None:
        """The entry's ``meta.json``, or None when absent or unreadable (logged)."""
        meta_path = Path(folder) / "meta.json"
        if not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("token cache %s: meta.json is unreadable (%s); rebuilding", folder, exc)
            return None
        return meta if isinstance(meta, dict) else None

    def load(
        self,
        encoder_key: str,
        manifest_key: str,
        manifest: Manifest,
        codebook_sizes: tuple[int, ...],
        verify: bool = False,
    ) -> TokenSplit | None:
        """The cached split, or None when absent, written for another key, or damaged.

        Args:
            verify: hash ``tokens.bin`` even if this process verified it already.
        """
        folder = self.entry_dir(encoder_key, manifest_key)
        meta = self.read_meta(folder)
        if meta is None:
            return None
        if (
            meta.get("format") != CACHE_FORMAT
            or meta.get("encoder_key") != encoder_key
            or meta.get("manifest_key") != manifest_key
        ):
            log.warning("token cache %s does not match its key; re-encoding", folder)
            return None
        if not self._intact(folder, meta, verify):
            return None
        try:
            index = np.load(folder / "index.npz")
            ids = [str(x) for x in index["ids"]]
            offsets, lengths = index["offsets"], index["lengths"]
        except (OSError, ValueError, KeyError) as exc:
            log.warning("token cache %s: index is damaged (%s); rebuilding", folder, exc)
            return None
        total = int(meta["total_frames"])
        row = (int(meta["num_codebooks"]),)
        if meta.get("feature_dim"):
            row = (*row, int(meta["feature_dim"]))
        data = (
            np.memmap(folder / "tokens.bin", dtype=meta["dtype"], mode="r", shape=(total, *row))
            if total
            else np.zeros((0, *row), dtype=meta["dtype"])
        )
        if set(ids) != {u.id for u in manifest}:
            log.warning("token cache %s misses utterances; re-encoding", folder)
            return None
        return TokenSplit(manifest, ids, offsets, lengths, data, codebook_sizes, folder)

    @staticmethod
    def _intact(folder: Path, meta: dict, verify: bool) -> bool:
        """Size of ``tokens.bin`` always; its sha256 once per process (or when ``verify``)."""
        path = folder / "tokens.bin"
        try:
            size = path.stat().st_size
        except OSError:
            size = -1
        if size != meta.get("tokens_bytes"):
            log.warning(
                "token cache %s: tokens.bin has %d bytes, meta.json says %s; rebuilding",
                folder, size, meta.get("tokens_bytes"),
            )  # fmt: skip
            return False
        if verify or str(folder) not in _VERIFIED:
            if file_sha256(path) != meta.get("tokens_sha256"):
                log.warning("token cache %s: tokens.bin checksum mismatch; rebuilding", folder)
                return False
            _VERIFIED.add(str(folder))
        return True

    def build(
        self,
        tokenizer: Tokenizer,
        encoder_key: str,
        manifest_key: str,
        manifest: Manifest,
        batches: Iterator[tuple[list[str], torch.Tensor, torch.Tensor]],
    ) -> TokenSplit:
        """Encode ``batches`` of ``(ids, wav[B, T], lengths[B])`` and store them atomically.

        Raises:
            ContractError: the tokenizer returns ids outside its codebooks or bad shapes.
        """
        sizes = tokenizer.info.codebook_sizes
        folder = self.entry_dir(encoder_key, manifest_key)
        with atomic_folder(folder) as tmp:
            meta = _write_entry(tokenizer, tmp, batches)
            meta.update(_entry_keys(encoder_key, manifest_key, manifest))
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        _VERIFIED.add(str(folder))
        split = self.load(encoder_key, manifest_key, manifest, sizes)
        if split is None:  # pragma: no cover - we just wrote it
            raise ContractError(f"token cache {folder} could not be read back")
        return split

    # --- sharded extraction ---------------------------------------------------------------

    def shard_dir(self, encoder_key: str, manifest_key: str, index: int, count: int) -> Path:
        """Folder of shard ``index`` of ``count`` of one entry (beside the entry, hidden)."""
        entry = self.entry_dir(encoder_key, manifest_key)
        return entry.with_name(f".{entry.name}.shards") / f"{index:05d}-of-{count:05d}"

    def shard_done(self, folder: Path) -> bool:
        """Whether a shard folder is complete and intact (its ``meta.json`` is written last)."""
        meta = self.read_meta(folder)
        return (
            meta is not None
            and meta.get("format") == CACHE_FORMAT
            and self._intact(Path(folder), meta, verify=True)
        )

    def build_shard(
        self,
        tokenizer: Tokenizer,
        encoder_key: str,
        manifest_key: str,
        index: int,
        count: int,
        batches: Iterator[tuple[list[str], torch.Tensor, torch.Tensor]],
    ) -> Path:
        """Encode one shard's ``batches`` into its own folder, atomically (same layout as
        an entry); a complete shard is kept as it is. Returns the shard folder."""
        folder = self.shard_dir(encoder_key, manifest_key, index, count)
        if self.shard_done(folder):
            return folder
        with atomic_folder(folder) as tmp:
            meta = _write_entry(tokenizer, tmp, batches)
            meta.update(encoder_key=encoder_key, manifest_key=manifest_key, shard=[index, count])
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        return folder

    def merge_shards(
        self, tokenizer: Tokenizer, encoder_key: str, manifest_key: str, manifest: Manifest,
        count: int,
    ) -> TokenSplit:  # fmt: skip
        """Concatenate the ``count`` shards, in order, into the entry (atomically), then
        remove them. The entry is the one :meth:`build` would write from the same batches.

        Raises:
            ContractError: a shard is missing, damaged, or was written for other tokens.
        """
        info = tokenizer.info
        folder = self.entry_dir(encoder_key, manifest_key)
        shards = [self.shard_dir(encoder_key, manifest_key, i, count) for i in range(count)]
        metas = []
        for shard in shards:
            meta = self.read_meta(shard)
            if not self.shard_done(shard) or meta is None or meta.get("encoder_key") != encoder_key:
                raise ContractError(f"token cache shard {shard} is missing or damaged; rerun")
            metas.append(meta)
        fields = ("dtype", "num_codebooks", "codebook_sizes", "feature_dim")
        if any(m[f] != metas[0][f] for m in metas for f in fields):
            raise ContractError(f"token cache shards of {folder} disagree on {fields}")
        ids: list[str] = []
        lengths: list[np.ndarray] = []
        with atomic_folder(folder) as tmp:
            digest = hashlib.sha256()
            with (tmp / "tokens.bin").open("wb") as handle:
                for shard in shards:
                    with (shard / "tokens.bin").open("rb") as part:
                        for chunk in iter(lambda part=part: part.read(1 << 20), b""):
                            handle.write(chunk)
                            digest.update(chunk)
                    index = np.load(shard / "index.npz")
                    ids.extend(str(x) for x in index["ids"])
                    lengths.append(index["lengths"].astype(np.int64))
                handle.flush()
                os.fsync(handle.fileno())
                written = handle.tell()
            lengths_arr = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
            meta = _index_and_meta(tmp, info, np.dtype(metas[0]["dtype"]), ids, lengths_arr,
                                   written, digest.hexdigest())  # fmt: skip
            meta.update(_entry_keys(encoder_key, manifest_key, manifest))
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        shutil.rmtree(shards[0].parent, ignore_errors=True)
        _VERIFIED.add(str(folder))
        split = self.load(encoder_key, manifest_key, manifest, info.codebook_sizes)
        if split is None:
            raise ContractError(f"token cache {folder}: merged shards miss utterances; rerun")
        return split


def _entry_keys(encoder_key: str, manifest_key: str, manifest: Manifest) -> dict:
    source = str(manifest.source) if manifest.source else None
    return {"encoder_key": encoder_key, "manifest_key": manifest_key, "manifest_source": source}


def shard_ranges(num_utterances: int, shard_size: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` utterance index ranges of consecutive shards (at least one)."""
    if shard_size < 1:
        raise ValueError(f"shard size must be positive, got {shard_size}")
    starts = range(0, max(num_utterances, 1), shard_size)
    return [(start, min(start + shard_size, num_utterances)) for start in starts]


def _write_entry(
    tokenizer: Tokenizer, tmp: Path, batches: Iterator[tuple[list[str], torch.Tensor, torch.Tensor]]
) -> dict:
    """Encode ``batches`` into ``tmp/tokens.bin`` and ``tmp/index.npz``; the meta, less keys."""
    import torch

    info = tokenizer.info
    sizes = info.codebook_sizes
    dtype = np.dtype(np.float16) if info.is_continuous else smallest_dtype(sizes)
    row_shape = (info.num_codebooks, info.feature_dim) if info.is_continuous else None
    limits = None if info.is_continuous else torch.tensor(sizes, dtype=torch.int64)
    ids: list[str] = []
    lengths: list[int] = []
    digest = hashlib.sha256()
    with (tmp / "tokens.bin").open("wb") as handle:
        for batch_ids, wav, wav_lengths in batches:
            with torch.inference_mode():
                tokens, token_lengths = tokenizer.encode(wav, wav_lengths)
            token_lengths = token_lengths.detach().to("cpu", torch.int64)
            if limits is None:
                tokens = tokens.detach().to("cpu", torch.float32)
                _check_features(info.name, tokens, row_shape, batch_ids)
            else:
                tokens = tokens.detach().to("cpu", torch.int64)
                _check_tokens(info.name, tokens, token_lengths, limits, batch_ids)
            for row, utt_id in enumerate(batch_ids):
                n = int(token_lengths[row])
                chunk = tokens[row, :n].numpy().astype(dtype).tobytes()
                handle.write(chunk)
                digest.update(chunk)
                ids.append(utt_id)
                lengths.append(n)
            del tokens, token_lengths
            release_freed_memory()
        handle.flush()
        os.fsync(handle.fileno())
        written = handle.tell()
    lengths_arr = np.asarray(lengths, dtype=np.int64)
    return _index_and_meta(tmp, info, dtype, ids, lengths_arr, written, digest.hexdigest())


def _index_and_meta(
    tmp: Path, info, dtype: np.dtype, ids: list[str], lengths: np.ndarray, written: int,
    sha256: str,
) -> dict:  # fmt: skip
    """Write ``index.npz`` (ids, offsets, lengths); the entry's meta, less its keys."""
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    np.savez(tmp / "index.npz", ids=np.asarray(ids), offsets=offsets, lengths=lengths)
    return {
        "format": CACHE_FORMAT,
        "tokenizer": info.name,
        "dtype": dtype.name,
        "num_codebooks": info.num_codebooks,
        "codebook_sizes": list(info.codebook_sizes),
        "feature_dim": info.feature_dim,
        "utterances": len(ids),
        "total_frames": int(lengths.sum()),
        "tokens_bytes": written,
        "tokens_sha256": sha256,
    }


def _check_tokens(
    name: str,
    tokens: torch.Tensor,
    token_lengths: torch.Tensor,
    limits: torch.Tensor,
    batch_ids: list[str],
) -> None:
    """Raise ContractError when encode's output breaks the contract (shape or id range)."""
    import torch

    if tokens.ndim != 3 or tokens.shape[0] != len(batch_ids) or tokens.shape[2] != len(limits):
        raise ContractError(
            f"tokenizer {name!r}: encode returned shape {tuple(tokens.shape)}, expected "
            f"[{len(batch_ids)}, N, {len(limits)}]; run check-tokenizer {name}"
        )
    frames = torch.arange(tokens.shape[1]).unsqueeze(0) < token_lengths.unsqueeze(1)
    valid = tokens[frames]
    if valid.numel() and (bool((valid < 0).any()) or bool((valid >= limits).any())):
        raise ContractError(
            f"tokenizer {name!r}: encode returned ids outside its codebooks on "
            f"{batch_ids[0]!r}..; run check-tokenizer {name}"
        )


def _check_features(
    name: str, features: torch.Tensor, row_shape: tuple[int, ...] | None, batch_ids: list[str]
) -> None:
    """Raise ContractError unless a continuous reference returned finite ``[B, N, K, D]``."""
    import torch

    if (
        features.ndim != 4
        or features.shape[0] != len(batch_ids)
        or (row_shape is not None and tuple(features.shape[2:]) != row_shape)
    ):
        raise ContractError(
            f"continuous reference {name!r}: encode returned shape {tuple(features.shape)}, "
            f"expected [{len(batch_ids)}, N, *{row_shape}]"
        )
    if not bool(torch.isfinite(features).all()):
        raise ContractError(
            f"continuous reference {name!r}: non-finite features near {batch_ids[0]!r}"
        )
