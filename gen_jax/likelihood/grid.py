"""Integrating a 2D density on a grid: "this model is normalized" as a measured number.

`log_integrate_2d` computes log of the integral of exp(log_f) over a box with the midpoint
rule (a logsumexp, so it also gives log Z of an unnormalized energy model). `grid_mass`
returns the integral over the box and an estimate of the mass outside it, from the same rule
on a box three times as wide.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import logsumexp

Box = tuple[float, float, float, float]  # (xmin, xmax, ymin, ymax)


def widened(box: Box, frac: float) -> Box:
    """`box` widened by `frac` of its width (and height) on each side."""
    xmin, xmax, ymin, ymax = box
    wx, wy = (xmax - xmin) * frac, (ymax - ymin) * frac
    return (xmin - wx, xmax + wx, ymin - wy, ymax + wy)


def grid_points(box: Box, n: int) -> tuple[np.ndarray, float]:
    """Cell centres (n*n, 2) of an n x n grid over `box`, rows along y, and the cell area."""
    xmin, xmax, ymin, ymax = box
    hx, hy = (xmax - xmin) / n, (ymax - ymin) / n
    xs = xmin + hx * (np.arange(n) + 0.5)
    ys = ymin + hy * (np.arange(n) + 0.5)
    xx, yy = np.meshgrid(xs, ys)
    return np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32), hx * hy


def evaluate_on_grid(
    log_f: Callable[[jax.Array], jax.Array], box: Box, n: int, chunk: int = 16384
) -> np.ndarray:
    """log_f at the n*n cell centres, as an (n, n) array indexed [y, x]."""
    pts, _ = grid_points(box, n)
    out = [np.asarray(log_f(jnp.asarray(pts[i : i + chunk]))) for i in range(0, len(pts), chunk)]
    return np.concatenate(out).reshape(n, n)


def log_integrate_values(values: np.ndarray, box: Box) -> float:
    """log of the midpoint-rule integral from log-values at the n x n cell centres of `box`."""
    n = values.shape[0]
    _, area = grid_points(box, 1)
    return float(logsumexp(np.asarray(values, np.float64))) + math.log(area / n**2)


def log_integrate_2d(log_f: Callable[[jax.Array], jax.Array], box: Box, n: int = 400) -> float:
    """log of the integral of exp(log_f) over `box` (midpoint rule, n x n cells)."""
    return log_integrate_values(evaluate_on_grid(log_f, box, n), box)


def grid_mass(
    log_prob: Callable[[jax.Array], jax.Array],
    box: Box,
    n: int = 200,
    outside_n: int | None = None,
    values: np.ndarray | None = None,
) -> tuple[float, float | None]:
    """(integral of a density over `box`, estimated mass outside it).

    The outside mass is the integral over a box three times as wide (same centre, `outside_n`
    cells a side, default n: three times coarser) minus the integral over `box`;
    `outside_n=0` skips it (None is returned), for models whose density is expensive.
    `values`: log_prob already evaluated on the n x n grid of `box` (then not recomputed).
    """
    values = evaluate_on_grid(log_prob, box, n) if values is None else values
    inside = math.exp(log_integrate_values(values, box))
    outside_n = values.shape[0] if outside_n is None else outside_n
    if outside_n == 0:
        return inside, None
    xmin, xmax, ymin, ymax = box
    wx, wy = xmax - xmin, ymax - ymin
    wide = (xmin - wx, xmax + wx, ymin - wy, ymax + wy)
    total = math.exp(log_integrate_2d(log_prob, wide, outside_n))
    return inside, max(total - inside, 0.0)
