"""Sample-quality metrics: a second axis beside likelihood."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def _median_heuristic(x: np.ndarray, y: np.ndarray, n: int = 2000, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    z = np.concatenate(
        [
            x[rng.choice(len(x), min(n, len(x)), replace=False)],
            y[rng.choice(len(y), min(n, len(y)), replace=False)],
        ]
    )
    d2 = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)[np.triu_indices(len(z), 1)]
    med = np.median(d2)
    if med <= 0:  # most pairs coincide (discrete data): the median of the nonzero distances, else 1
        med = np.median(d2[d2 > 0]) if np.any(d2 > 0) else 2.0
    return float(np.sqrt(med / 2))


@jax.jit
def _kernel_sum(a: jax.Array, b: jax.Array, inv_two_h2: jax.Array) -> jax.Array:
    """Sum over all pairs of sum_h exp(-|a - b|^2 / (2 h^2))."""
    d2 = jnp.sum(a**2, 1)[:, None] + jnp.sum(b**2, 1)[None, :] - 2 * a @ b.T
    d2 = jnp.maximum(d2, 0.0)
    return jnp.sum(jnp.exp(-d2[..., None] * inv_two_h2[None, None, :]))


def _pair_sum(a, b, inv, chunk):
    total = 0.0
    for i in range(0, len(a), chunk):
        for j in range(0, len(b), chunk):
            total += float(_kernel_sum(a[i : i + chunk], b[j : j + chunk], inv))
    return total


def mmd(x, y, bandwidths: Sequence[float] | None = None, chunk: int = 2000) -> float:
    """Squared maximum mean discrepancy between samples x (n, d) and y (m, d).

    Unbiased estimator with a sum of Gaussian kernels; default bandwidths are the median
    heuristic h times (0.25, 0.5, 1, 2, 4). Computed in chunks (memory-bounded), float32
    pairwise sums accumulated in float64 on the host. 0 in expectation when x and y come
    from the same distribution.
    """
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.float32)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"mmd needs two (n, d) sample arrays of the same d, got {x.shape} and {y.shape}")
    if bandwidths is None:
        h = _median_heuristic(x, y)
        bandwidths = [h * f for f in (0.25, 0.5, 1.0, 2.0, 4.0)]
    inv = jnp.asarray([1.0 / (2 * h * h) for h in bandwidths], jnp.float32)
    n, m, k = len(x), len(y), len(bandwidths)
    kxx = (_pair_sum(x, x, inv, chunk) - n * k) / (n * (n - 1))  # drop the diagonal (kernel = 1 there)
    kyy = (_pair_sum(y, y, inv, chunk) - m * k) / (m * (m - 1))
    kxy = _pair_sum(x, y, inv, chunk) / (n * m)
    return (kxx + kyy - 2 * kxy) / k


def mode_fractions(samples, centers) -> np.ndarray:
    """Fraction of `samples` (n, d) whose nearest centre is each row of `centers` (k, d).

    A mode-coverage check for data made of separate modes: a sampler that drops a mode gives
    it ~0, one that covers all k equally gives ~1/k each.
    """
    samples = np.asarray(samples, np.float64)
    centers = np.asarray(centers, np.float64)
    if samples.ndim != 2 or centers.ndim != 2 or samples.shape[1] != centers.shape[1]:
        raise ValueError(
            f"mode_fractions needs (n, d) samples and (k, d) centres, got {samples.shape}, {centers.shape}"
        )
    d2 = ((samples[:, None, :] - centers[None, :, :]) ** 2).sum(-1)
    return np.bincount(d2.argmin(1), minlength=len(centers)) / len(samples)
