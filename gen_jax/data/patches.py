"""The tiny discrete world: k x k binary patches cut from binarized images (3x3: 512 states).

    train, test = binary_patches("fashion-mnist", n_train=100_000, n_test=20_000)   # (n, 9) in {0, 1}

Images are binarized at a threshold (pixel > 127 by default); each patch is taken from a random
image at a random position (train patches from the train images, test patches from the test
images) and flattened row by row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gen_jax.data.idx import load_idx_split


def random_patches(images: np.ndarray, n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """n patches (n, size * size) from random images (N, H, W) at random positions."""
    num, h, w = images.shape
    if size > min(h, w):
        raise ValueError(f"patch size {size} exceeds the image size {h}x{w}")
    idx = rng.integers(0, num, n)
    rows = rng.integers(0, h - size + 1, n)
    cols = rng.integers(0, w - size + 1, n)
    offsets = np.arange(size)
    r = rows[:, None, None] + offsets[None, :, None]
    c = cols[:, None, None] + offsets[None, None, :]
    return images[idx[:, None, None], r, c].reshape(n, size * size)


def empirical_entropy(x: np.ndarray) -> float:
    """Entropy (nats) of the empirical distribution of the rows of x."""
    _, counts = np.unique(np.asarray(x), axis=0, return_counts=True)
    p = counts / counts.sum()
    return float(-np.sum(p * np.log(p)))


def binary_patches(
    name: str = "fashion-mnist",
    n_train: int = 100_000,
    n_test: int = 20_000,
    size: int = 3,
    threshold: int = 127,
    seed: int = 0,
    directory: str | Path | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) float32 arrays of binary patches, (n, size * size)."""
    rng = np.random.default_rng(seed)
    out = []
    for split, n in (("train", n_train), ("test", n_test)):
        images, _ = load_idx_split(name, split, directory)
        out.append((random_patches(images, n, size, rng) > threshold).astype(np.float32))
    return out[0], out[1]
