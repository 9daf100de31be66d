"""Attention fusion of discrete tokens: scoring each embedding-table row once (what
``TokenFrontEnd`` does when the table has fewer rows than the batch has tokens) against
scoring every token (the informed layer selector as written), in one run.

    .venv/bin/python scripts/bench_fusion.py [--repeats 10] [--threads 1]

For the mini ASR batch geometry of a few tokenizers, prints the seconds of one forward and
backward pass of the front end each way, their ratio, and the largest difference between
the fused frames (the two must agree).
"""

from __future__ import annotations

import argparse
import logging
import time

import torch

from benchmark.models.frontend import TokenFrontEnd

log = logging.getLogger("bench_fusion")

#: name -> (codebook sizes, frames per second); batches of 8 utterances of 4 s, D = 128.
GEOMETRIES: dict[str, tuple[tuple[int, ...], int]] = {
    "wavlm-attn (5 x 128, 50 Hz)": ((128,) * 5, 50),
    "encodec-6kbps (8 x 1024, 75 Hz)": ((1024,) * 8, 75),
    "dmel (80 x 16, 80 Hz)": ((16,) * 80, 80),
}


def _per_token(front: TokenFrontEnd, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return front.fusion(front.embedding(tokens, mask))[0]


def _timed(fuse, front, tokens, mask, repeats: int) -> tuple[float, torch.Tensor]:
    fused = fuse(front, tokens, mask)
    fused.square().mean().backward()  # warm-up: not timed
    start = time.perf_counter()
    for _ in range(repeats):
        front.zero_grad(set_to_none=True)
        fused = fuse(front, tokens, mask)
        fused.square().mean().backward()
    return (time.perf_counter() - start) / repeats, fused.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    for name, (sizes, rate) in GEOMETRIES.items():
        torch.manual_seed(0)
        front = TokenFrontEnd(sizes, dim=128)
        frames = 4 * rate
        tokens = torch.stack([torch.randint(0, c, (8, frames)) for c in sizes], dim=-1)
        mask = torch.ones(8, frames, dtype=torch.bool)
        rows, count = front.embedding.table.num_embeddings, tokens.numel()
        direct, reference = _timed(_per_token, front, tokens, mask, args.repeats)
        scored, fused = _timed(lambda f, t, m: f(t, m)[0], front, tokens, mask, args.repeats)
        route = "rows scored" if count > rows else "tokens scored (table larger than the batch)"
        log.info(
            "%s: %d tokens, %d table rows (%s): per token %.4f s, front end %.4f s, "
            "ratio %.2fx; max |difference| %.2e",
            name, count, rows, route, direct, scored, direct / scored,
            float((fused - reference).abs().max()),
        )  # fmt: skip


if __name__ == "__main__":
    main()
