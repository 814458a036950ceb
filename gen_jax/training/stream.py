"""Training data larger than memory: a stream of batches instead of one array.

    stream = Stream(lambda start: my_batches(start), example=first_1024_examples)
    train(model, stream, cfg)                  # same loop, checkpoints, resume and metrics

`batches(start)` yields the global batches of steps start, start + 1, ... (each an array (batch_size,
...) or {"x": ..., "context": ...}); on resume the loop asks for the batches from the resumed step on,
so a stream that can seek (files read in pieces, a tfds/grain pipeline with a skip) resumes exactly.
`example`: a few examples for the model's init (its data-dependent statistics) and the shape checks.

Each dispatch of k steps pulls k batches from the stream on the host, stacks them into one block and
runs the same scanned, jitted steps as the in-memory path over it (`sequential_batches` picks the
step's batch out of the block), so one step of a stream equals one step of the array path on the same
batch. `shards_from_npy` reads a dataset stored as several .npy files one piece at a time (memory-
mapped): the path for data such as ImageNet 32x32 (1.28 M images, 3.9 GB as uint8) that one host cannot
hold as a device array. Several hosts: give each its own stream of its own shard; only single-process
streams are tested here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np


@dataclasses.dataclass(frozen=True)
class Stream:
    """Training batches from a source read in pieces (see the module docstring)."""

    batches: Callable[[int], Iterator[Any]]
    example: Any


class Blocks:
    """The host side of a stream during training: the next n batches as one block, rotated so that
    step s of the block's dispatch finds its batch at position s mod n (as `sequential_batches` reads)."""

    def __init__(self, stream: Stream, start: int):
        self.source, self.start = stream.batches(start), start

    def block(self, step: int, n: int):
        """The batches of steps step .. step + n - 1, stacked along the example axis."""
        if step != self.start:
            raise RuntimeError(f"stream at step {self.start}, asked for step {step}")
        try:
            batches = [next(self.source) for _ in range(n)]
        except StopIteration:
            raise ValueError(
                f"the stream ended before step {step + n}; make it yield every step's batch"
            ) from None
        self.start += n
        order = [(j - step) % n for j in range(n)]  # position p holds the batch of step (step + order[p])
        stacked = jax.tree_util.tree_map(lambda *b: np.concatenate([b[i] for i in order]), *batches)
        return jax.tree_util.tree_map(jax.numpy.asarray, stacked)


def shards_from_npy(paths: Sequence[str | Path], batch_size: int, seed: int = 0) -> Callable[[int], Iterator]:
    """`Stream.batches` over a dataset saved as several .npy files (the shards): epochs of the shards in
    a seeded order, each shard memory-mapped and read in `batch_size` runs of consecutive examples (a
    shard's remainder is dropped); batches(start) skips to step `start` without reading the skipped
    data. Only one shard's pages are touched at a time."""
    sizes = [np.load(p, mmap_mode="r").shape[0] // batch_size for p in paths]
    per_epoch = sum(sizes)
    if per_epoch == 0:
        raise ValueError(f"no shard holds a whole batch of {batch_size} examples")

    def batches(start: int):
        step = start
        while True:
            epoch, offset = divmod(step, per_epoch)
            for shard in np.random.default_rng(seed + epoch).permutation(len(paths)):
                if offset >= sizes[shard]:
                    offset -= sizes[shard]
                    continue
                data = np.load(paths[shard], mmap_mode="r")
                for b in range(offset, sizes[shard]):
                    yield np.asarray(data[b * batch_size : (b + 1) * batch_size])
                    step += 1
                offset = 0

    return batches
