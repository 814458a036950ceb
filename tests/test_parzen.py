"""The Parzen-window estimate: chunking is exact, it converges to a known Gaussian's density as N
grows (and its bandwidth shrinks), it matches the closed form of a KDE's mean, and it works on
any model that samples (including one with no density)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from gen_jax.evaluation import evaluate_nll
from gen_jax.likelihood.parzen import (
    KIND,
    kde_log_prob,
    parzen_estimate,
    parzen_estimator,
    parzen_from_model,
    parzen_log_prob,
    select_bandwidth,
)
from gen_jax.models import Kind, make_model


def _normal(key, n, d=2):
    return np.asarray(jax.random.normal(key, (n, d)))


def _std_normal_nll(x):
    return 0.5 * np.sum(x**2, 1) + 0.5 * x.shape[1] * math.log(2 * math.pi)


@pytest.mark.parametrize("d", [3, 40])  # exact differences / the matmul form
def test_chunked_kde_matches_direct_sum(key, d):
    x = _normal(jax.random.fold_in(key, 1), 37, d)
    c = _normal(jax.random.fold_in(key, 2), 101, d) + 0.5
    h = np.array([0.3, 1.0, 4.0], np.float32)
    got = np.asarray(kde_log_prob(x, c, h, x_batch=5, center_chunk=7))
    d2 = ((x[:, None].astype(np.float64) - c[None]) ** 2).sum(-1)
    want = np.stack(
        [
            logsumexp(-d2 / (2 * b**2), axis=1) - math.log(101) - 0.5 * d * math.log(2 * math.pi * b**2)
            for b in h
        ],
        axis=1,
    )
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-3)


def test_parzen_converges_to_the_true_gaussian(key):
    val, test = _normal(jax.random.fold_in(key, 1), 1000), _normal(jax.random.fold_in(key, 2), 1000)
    truth = _std_normal_nll(test).mean()
    gaps, widths = [], []
    for n in (100, 1000, 10_000):
        r = parzen_estimate(_normal(jax.random.fold_in(key, n), n), val, test)
        assert r.kind == KIND == Kind.ESTIMATE and r.num_samples == n
        gaps.append(r.nll - truth)
        widths.append(r.bandwidth)
    assert gaps[0] > gaps[1] > gaps[2] > -0.01, gaps  # the KDE's blur overestimates the NLL, less as N grows
    assert abs(gaps[2]) < 0.03, gaps
    assert widths[0] > widths[1] > widths[2], widths  # the chosen bandwidth shrinks with N


def test_fixed_bandwidth_matches_the_closed_form_mean(key):
    """With N(0, I) samples, E[p_hat] = N(0, (1 + h^2) I): the KDE's blur, in closed form."""
    h, n = 0.5, 40_000
    x = _normal(jax.random.fold_in(key, 1), 300)
    x = x[np.linalg.norm(x, axis=1) < 2.0]
    got = np.asarray(parzen_log_prob(_normal(jax.random.fold_in(key, 2), n), h)(x))
    s2 = 1.0 + h**2
    want = -0.5 * np.sum(x**2, 1) / s2 - math.log(2 * math.pi * s2)
    err = np.abs(got - want)
    assert err.mean() < 0.02 and err.max() < 0.1, (err.mean(), err.max())


def test_bandwidth_grid_and_bad_input(key):
    c, v = _normal(jax.random.fold_in(key, 1), 500), _normal(jax.random.fold_in(key, 2), 300)
    best, grid, nll = select_bandwidth(c, v, bandwidths=[0.1, 0.3, 0.6, 2.0])
    assert best == grid[int(np.argmin(nll))] and len(grid) == 4
    with pytest.warns(UserWarning, match="edge of the grid"):
        select_bandwidth(c, v, bandwidths=[1.5, 3.0, 6.0])
    with pytest.raises(ValueError, match="event shape"):
        parzen_estimate(c, v[:, :1], v)


def test_parzen_on_models_that_sample(key):
    data = _normal(jax.random.fold_in(key, 1), 6000)
    val, test = data[:1000], data[1000:3000]
    gauss = make_model("gaussian", (2,))
    params = gauss.init(key, jnp.asarray(data[3000:]))
    exact, _, _ = evaluate_nll(gauss, params, test, key)
    r = parzen_from_model(gauss, params, jax.random.fold_in(key, 2), val, test, num_samples=3000)
    assert abs(r.nll - exact) < 0.05, (r.nll, exact)
    # as an estimator view of the model, through the common evaluation path
    view = gauss.replace(estimators={"parzen": parzen_estimator(gauss, val, num_samples=2000)}).views()[1][1]
    assert view.kind == Kind.ESTIMATE
    est, _, _ = evaluate_nll(view, params, test[:1000], key, batch_size=1000)
    assert abs(est - exact) < 0.1, (est, exact)
