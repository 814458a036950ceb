"""Noise-contrastive estimation and contrastive divergence against cases with known answers.

On Gaussian data, an energy model whose network is linear (f(z) = w.z + b on standardized z, plus the
isotropic quadratic |z|^2 / 2 s^2) is a Gaussian with a closed-form log Z:
    log Z = sum_i log scale_i - b + (D/2) log(2 pi s^2) + s^2 |w|^2 / 2.
NCE must learn that log Z as its parameter, and both NCE and CD must fit the data (NLL near the true
entropy). On 9 bits, NCE's learned log Z must match enumeration and CD must fit like exact ML."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.core.capabilities import LearnedLogZ, ShortRunSampler
from gen_jax.likelihood.enumerate import all_binary_states
from gen_jax.models import make_model
from gen_jax.training import TrainConfig, train
from tests.tiny_models import raw_model

MEAN, SD = np.array([1.0, -2.0]), np.array([0.5, 2.0])
ENTROPY = float(np.sum(0.5 * np.log(2 * np.pi * np.e * SD**2)))


def closed_form_log_z(params, prior_scale: float) -> float:
    """log Z of the linear energy (see the module docstring)."""
    (kernel, bias) = sorted(jax.tree_util.tree_leaves(params["net"]), key=lambda a: -a.size)
    w, b = np.asarray(kernel)[:, 0], float(np.asarray(bias)[0])
    d = w.size
    log_scale = float(np.sum(np.log(np.asarray(params["stats"]["scale"]))))
    return (
        log_scale - b + 0.5 * d * math.log(2 * math.pi * prior_scale**2) + 0.5 * prior_scale**2 * float(w @ w)
    )


def _fit(objective: str, steps: int, **options):
    x = (np.random.default_rng(0).normal(size=(20_000, 2)) * SD + MEAN).astype(np.float32)
    model = raw_model(f"ebm_{objective}", (2,), hidden=(), prior_scale=1.0, **options)
    cfg = TrainConfig(
        steps=steps, batch_size=256, lr=1e-2, warmup_steps=50, progress=False, steps_per_dispatch=100
    )
    res = train(model, x, cfg)
    test = jnp.asarray(x[:4000])
    return model, res.params, test


def test_nce_learns_the_closed_form_log_z_and_fits_a_gaussian():
    model, params, test = _fit("nce", 1500)
    log_z = closed_form_log_z(params, 1.0)
    learned = float(model.get(LearnedLogZ).read(params))
    assert abs(learned - log_z) < 0.05, (learned, log_z)
    nll = float(-jnp.mean(model.log_prob(params, test))) + log_z
    assert abs(nll - ENTROPY) < 0.05, (nll, ENTROPY)


def test_cd_fits_a_gaussian_and_its_short_run_chains_run():
    model, params, test = _fit("cd", 1500, cd_chains=256, cd_steps=20, cd_step_size=0.05)
    nll = float(-jnp.mean(model.log_prob(params, test))) + closed_form_log_z(params, 1.0)
    assert abs(nll - ENTROPY) < 0.05, (nll, ENTROPY)
    runner = model.get(ShortRunSampler)
    assert runner.train_steps == 20
    long_run = np.asarray(runner.sample(params, jax.random.key(3), 2000, 500))
    np.testing.assert_allclose(long_run.mean(0), MEAN, atol=0.15)  # the chains reach the fitted Gaussian
    np.testing.assert_allclose(long_run.std(0), SD, rtol=0.15)


@pytest.fixture(scope="module")
def bits():
    rng = np.random.default_rng(0)
    protos = (rng.random((3, 9)) < 0.5).astype(np.float32)
    return np.abs(protos[rng.integers(0, 3, 5000)] - (rng.random((5000, 9)) < 0.1)).astype(np.float32)


def _exact_nll(model, params, x):
    lp = model.log_prob(params, jnp.asarray(all_binary_states(9), jnp.float32))
    return float(jax.scipy.special.logsumexp(lp) - jnp.mean(model.log_prob(params, jnp.asarray(x))))


def test_binary_nce_learns_its_enumerated_log_z_and_cd_fits_like_exact_ml(bits):
    cfg = TrainConfig(steps=1500, batch_size=256, lr=3e-3, progress=False, steps_per_dispatch=100)
    fitted = {}
    for name in ("ebm_exact_ml", "ebm_bin_nce", "ebm_bin_cd"):
        model = make_model(name, 9, hidden=(32,))
        fitted[name] = (model, train(model, bits, cfg).params)
    model, params = fitted["ebm_bin_nce"]
    states = jnp.asarray(all_binary_states(9), jnp.float32)
    enumerated = float(jax.scipy.special.logsumexp(model.log_prob(params, states)))
    assert abs(float(model.get(LearnedLogZ).read(params)) - enumerated) < 0.05
    nll = {name: _exact_nll(m, p, bits[:2000]) for name, (m, p) in fitted.items()}
    assert (
        nll["ebm_bin_nce"] < nll["ebm_exact_ml"] + 0.05 and nll["ebm_bin_cd"] < nll["ebm_exact_ml"] + 0.05
    ), nll


def test_standardized_cd_model_trains_with_its_chains_in_the_inner_space():
    """The default (standardized) contrastive-divergence model: its persistent chains start in the
    standardized space the energy sees, and training runs with them (the state has the chains)."""
    x = (np.random.default_rng(0).normal(size=(2000, 2)) * SD * 100 + MEAN * 1000).astype(np.float32)
    model = make_model("ebm_cd", 2, hidden=(16,), cd_chains=32, cd_steps=3)
    cfg = TrainConfig(steps=20, batch_size=64, progress=False, steps_per_dispatch=10)
    res = train(model, x, cfg)
    chains = np.asarray(res.state.aux)
    assert chains.shape == (32, 2) and np.abs(chains).max() < 20.0  # standardized units, not raw
