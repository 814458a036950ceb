"""Vector datasets outside the 2D toy suite, each with its exact log-density (so its entropy is known):
for checking a model on data of another dimension and scale than the toys'.

- "mix6d": 6-D mixture of four axis-aligned Gaussians, means spread over [-10, 10], scales 0.4 to 3;
- "sine10d": 10-D chain, x_1 ~ N(0, 2^2), x_i | x_(i-1) ~ N(3 sin x_(i-1), 0.5^2): curved, non-Gaussian;
- "shifted2d": x_1 ~ N(0, 1), x_2 | x_1 ~ N(12 + 2 x_1^2, 0.5^2): a banana far from the origin.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
from scipy.special import logsumexp

LOG_2PI = math.log(2 * math.pi)


def _normal_lp(x, mean, sd):
    return -0.5 * ((x - mean) / sd) ** 2 - np.log(sd) - 0.5 * LOG_2PI


@dataclasses.dataclass(frozen=True)
class Synthetic:
    """A dataset: `sample(rng, n)` -> (n, D) float64 and its exact `log_prob(x)` -> (n,)."""

    name: str
    dim: int
    sample: Callable[[np.random.Generator, int], np.ndarray]
    log_prob: Callable[[np.ndarray], np.ndarray]

    def entropy(self, n: int = 200_000, seed: int = 12345) -> tuple[float, float]:
        """Monte Carlo H(p) = -E log p over n fresh samples: (estimate, standard error)."""
        lp = self.log_prob(self.sample(np.random.default_rng(seed), n))
        return float(-lp.mean()), float(lp.std(ddof=1) / math.sqrt(n))


_MIX_RNG = np.random.default_rng(2026)
_MIX_MEANS = _MIX_RNG.uniform(-10, 10, (4, 6))
_MIX_SDS = _MIX_RNG.uniform(0.4, 3.0, (4, 6))


def _mix_sample(rng, n):
    k = rng.integers(0, 4, n)
    return _MIX_MEANS[k] + _MIX_SDS[k] * rng.normal(size=(n, 6))


def _mix_lp(x):
    comp = np.sum(_normal_lp(x[:, None, :], _MIX_MEANS[None], _MIX_SDS[None]), axis=-1)  # (n, 4)
    return logsumexp(comp, axis=1) - math.log(4)


def _sine_sample(rng, n, d=10):
    x = np.empty((n, d))
    x[:, 0] = 2.0 * rng.normal(size=n)
    for i in range(1, d):
        x[:, i] = 3.0 * np.sin(x[:, i - 1]) + 0.5 * rng.normal(size=n)
    return x


def _sine_lp(x):
    lp = _normal_lp(x[:, 0], 0.0, 2.0)
    return lp + np.sum(_normal_lp(x[:, 1:], 3.0 * np.sin(x[:, :-1]), 0.5), axis=1)


def _shifted_sample(rng, n):
    x1 = rng.normal(size=n)
    return np.stack([x1, 12.0 + 2.0 * x1**2 + 0.5 * rng.normal(size=n)], axis=1)


def _shifted_lp(x):
    return _normal_lp(x[:, 0], 0.0, 1.0) + _normal_lp(x[:, 1], 12.0 + 2.0 * x[:, 0] ** 2, 0.5)


SYNTHETIC = {
    "mix6d": Synthetic("mix6d", 6, _mix_sample, _mix_lp),
    "sine10d": Synthetic("sine10d", 10, _sine_sample, _sine_lp),
    "shifted2d": Synthetic("shifted2d", 2, _shifted_sample, _shifted_lp),
}
