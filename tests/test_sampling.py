"""MCMC kernels leave their target invariant: started at exact samples, the moments stay put."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.likelihood.enumerate import all_binary_states
from gen_jax.sampling import annealed_langevin, gibbs_binary, hmc, langevin, mala

MEAN = jnp.array([1.0, -0.5])
COV = jnp.array([[1.0, 0.6], [0.6, 0.5]])
PREC = jnp.linalg.inv(COV)
N = 4000


def log_gauss(x):
    d = x - MEAN
    return -0.5 * d @ PREC @ d + 3.0  # unnormalized on purpose


def exact_samples(key, n=N):
    return MEAN[None] + jax.random.normal(key, (n, 2)) @ jnp.linalg.cholesky(COV).T


def moments_ok(x, tol_cov=0.08):
    """Mean within 5 standard errors, covariance entries within tol_cov."""
    x = np.asarray(x, np.float64)
    se = np.sqrt(np.diag(np.asarray(COV)) / len(x))
    mean_ok = np.all(np.abs(x.mean(0) - np.asarray(MEAN)) < 5 * se)
    cov_ok = np.all(np.abs(np.cov(x.T) - np.asarray(COV)) < tol_cov)
    return bool(mean_ok and cov_ok)


@pytest.mark.parametrize(
    "run",
    [
        lambda x0, k: mala(log_gauss, x0, k, step_size=0.3, num_steps=30),
        lambda x0, k: hmc(log_gauss, x0, k, step_size=0.3, num_steps=10, num_integration_steps=5),
    ],
    ids=["mala", "hmc"],
)
def test_metropolis_kernels_leave_gaussian_invariant(run):
    x0 = exact_samples(jax.random.key(0))
    res = jax.jit(run)(x0, jax.random.key(1))
    assert res.positions.shape == x0.shape
    assert 0.3 < float(jnp.mean(res.acceptance_rate)) < 1.0
    assert float(jnp.mean(jnp.abs(res.positions - x0))) > 0.1  # the chains moved
    assert moments_ok(res.positions)


def test_unadjusted_langevin_is_biased_where_mala_is_not():
    """The same step without the Metropolis correction inflates the variance: the check can fail."""
    x0 = exact_samples(jax.random.key(0))
    ula = jax.jit(lambda x, k: langevin(log_gauss, x, k, step_size=0.3, num_steps=30))(x0, jax.random.key(1))
    assert not moments_ok(ula.positions)
    small = jax.jit(lambda x, k: langevin(log_gauss, x, k, step_size=0.01, num_steps=30))(
        x0, jax.random.key(1)
    )
    assert moments_ok(small.positions)


def test_gibbs_leaves_binary_distribution_invariant():
    w = jnp.array([[0.0, 1.5, -1.0], [1.5, 0.0, 0.5], [-1.0, 0.5, 0.0]])
    b = jnp.array([0.3, -0.8, 0.2])
    log_f = lambda x: 0.5 * x @ w @ x + b @ x
    states = jnp.asarray(all_binary_states(3))
    logits = jax.vmap(log_f)(states)
    p = np.asarray(jax.nn.softmax(logits))
    x0 = states[jax.random.categorical(jax.random.key(0), logits, shape=(20000,))]
    res = jax.jit(lambda x, k: gibbs_binary(log_f, x, k, num_sweeps=3))(x0, jax.random.key(1))
    idx = np.asarray(res.positions @ jnp.array([4.0, 2.0, 1.0])).astype(int)
    freq = np.bincount(idx, minlength=8) / len(idx)
    assert np.abs(freq - p).max() < 0.015
    assert float(jnp.mean(jnp.abs(res.positions - x0))) > 0.05  # the chains moved


def test_annealed_langevin_samples_a_gaussian_from_its_noisy_scores():
    """Exact noise-conditional scores of N(m, C) smoothed by N(0, s^2): the output matches N(m, C)."""

    def score(x, s):
        return -jnp.linalg.solve(COV + s**2 * jnp.eye(2), x - MEAN)

    x0 = 3.0 * jax.random.normal(jax.random.key(0), (N, 2))
    sigmas = jnp.geomspace(3.0, 0.05, 8)
    res = jax.jit(lambda x, k: annealed_langevin(score, x, k, sigmas, 0.3, 100))(x0, jax.random.key(1))
    assert moments_ok(res.positions, tol_cov=0.1)
    assert math.isfinite(float(jnp.sum(res.positions)))
