"""The true 2D densities: normalized, consistent with their samplers, accurate quadrature."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gen_jax.data.toy2d as toy2d
from gen_jax.likelihood.grid import evaluate_on_grid

BOX = (-5.0, 5.0, -5.0, 5.0)
N_GRID = 200
N_BINS = 20
# The quadratures behind these densities are run-time heavy; the suite compiles at optimization
# level 0 (conftest.py), so these few programs ask for XLA's full optimization (2.5x faster here).
O3 = {"xla_backend_optimization_level": 3}


def fast(log_prob):
    return jax.jit(log_prob, compiler_options=O3)


@pytest.fixture(scope="module")
def grids():
    return {name: evaluate_on_grid(fast(t.log_prob), BOX, N_GRID) for name, t in toy2d.TOY_DATASETS.items()}


@pytest.mark.parametrize("name", list(toy2d.TOY_DATASETS))
def test_density_integrates_to_one(name, grids):
    cell = ((BOX[1] - BOX[0]) / N_GRID) ** 2
    mass = np.exp(grids[name].astype(np.float64)).sum() * cell
    assert abs(mass - 1.0) < 1e-3, mass


@pytest.mark.parametrize("name", list(toy2d.TOY_DATASETS))
def test_sampler_agrees_with_log_prob(name, grids):
    toy = toy2d.TOY_DATASETS[name]
    n = 200_000
    x = np.asarray(toy.sample(jax.random.key(11), n))
    assert x.shape == (n, 2) and np.isfinite(x).all()
    # histogram of samples against the density integrated over the same bins
    edges = np.linspace(BOX[0], BOX[1], N_BINS + 1)
    hist, _, _ = np.histogram2d(x[:, 1], x[:, 0], bins=[edges, edges])
    cell = ((BOX[1] - BOX[0]) / N_GRID) ** 2
    p = np.exp(grids[name].astype(np.float64)) * cell
    k = N_GRID // N_BINS
    binned = p.reshape(N_BINS, k, N_BINS, k).sum(axis=(1, 3))
    tv = 0.5 * np.abs(hist / n - binned).sum()
    assert tv < 0.03, f"total variation {tv:.4f} between samples and density"
    # entropy two ways: Monte Carlo over samples, and -sum p log p on the grid
    lp = np.asarray(fast(toy.log_prob)(jnp.asarray(x[:50_000])), np.float64)
    h_mc, se = -lp.mean(), lp.std() / math.sqrt(len(lp))
    pg = np.exp(grids[name].astype(np.float64))
    h_grid = -np.sum(pg * np.where(pg > 0, grids[name], 0.0)) * cell
    assert abs(h_mc - h_grid) < 4 * se + 5e-3, (h_mc, se, h_grid)


def test_checkerboard_entropy_is_ln32():
    h, se = toy2d.get_toy("checkerboard").entropy(n=10_000)
    assert abs(h - math.log(32)) < 1e-5 and se < 1e-5


def test_closed_forms():
    x = jax.random.normal(jax.random.key(0), (50, 2)) * 2.5
    # 8 gaussians: explicit mixture
    c, s = toy2d._8G_CENTERS.astype(np.float64), toy2d._8G_SIGMA
    xs = np.asarray(x, np.float64)
    comp = -((xs[:, None, :] - c[None]) ** 2).sum(-1) / (2 * s**2) - np.log(2 * np.pi * s**2)
    ref = np.log(np.exp(comp).mean(1))
    np.testing.assert_allclose(toy2d.get_toy("8gaussians").log_prob(x), ref, atol=1e-4)
    # rings: Bessel closed form against brute-force quadrature over the angle
    th = np.linspace(0, 2 * np.pi, 20_000, endpoint=False)
    dens = 0.0
    for r in toy2d._RINGS_RADII:
        ring = np.stack([r * np.cos(th), r * np.sin(th)], 1)
        d2 = ((xs[:, None, :] - ring[None]) ** 2).sum(-1)
        dens = (
            dens + np.exp(-d2 / (2 * toy2d._RINGS_SIGMA**2)).mean(1) / (2 * np.pi * toy2d._RINGS_SIGMA**2) / 4
        )
    mask = dens > 1e-20
    np.testing.assert_allclose(
        np.asarray(toy2d.get_toy("rings").log_prob(x))[mask], np.log(dens[mask]), atol=1e-3
    )


@pytest.mark.parametrize("name", ["moons", "swissroll", "2spirals", "pinwheel"])
def test_quadrature_accurate_to_1e3_nats(name, monkeypatch):
    """The production log_prob against the same integral computed 4x finer."""
    toy = toy2d.TOY_DATASETS[name]
    x = jnp.concatenate(
        [
            toy.sample(jax.random.key(5), 3000),
            jax.random.uniform(jax.random.key(6), (1000, 2), minval=-4, maxval=4),
        ]
    )
    coarse = np.asarray(fast(toy.log_prob)(x))
    if name == "pinwheel":
        monkeypatch.setattr(toy2d, "_PW_GRID", 4 * toy2d._PW_GRID)
        fine_fn = lambda v: toy2d._pinwheel_log_prob(v)
    elif name == "moons":
        parts = [
            toy2d._curve_log_density(
                toy2d._gauss_kernel(toy2d._MOONS_SIGMA),
                lambda t, i=i: toy2d._moon_curves(t)[i],
                0.0,
                math.pi,
                64,
            )
            for i in range(2)
        ]
        fine_fn = lambda v: jnp.logaddexp(parts[0](v), parts[1](v)) - math.log(2)
    elif name == "swissroll":
        fine_fn = toy2d._curve_log_density(
            toy2d._gauss_kernel(toy2d._SWISS_SIGMA),
            lambda t: (t * np.cos(t) / 5, t * np.sin(t) / 5),
            *toy2d._SWISS_T,
            256,
        )
    else:
        q = toy2d._curve_log_density(
            toy2d._box_gauss_kernel,
            lambda t: (-np.cos(t) * t / 3, np.sin(t) * t / 3),
            0.0,
            toy2d._SPIRAL_N_MAX,
            256,
            log_weight_fn=lambda t: np.log(2 * t / toy2d._SPIRAL_N_MAX**2),
        )
        fine_fn = lambda v: jnp.logaddexp(q(v), q(-v)) - math.log(2)
    fine = np.asarray(jax.jit(jax.vmap(fine_fn), compiler_options=O3)(x))
    keep = fine > -30  # far tails: both are tiny and float32-limited
    assert np.max(np.abs(coarse - fine)[keep]) < 1e-3


def test_bad_input_shape():
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        toy2d.get_toy("moons").log_prob(jnp.zeros((3, 3)))
    with pytest.raises(ValueError, match="unknown 2D dataset"):
        toy2d.get_toy("spiral")
