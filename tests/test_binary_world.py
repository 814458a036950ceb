"""The binary world's numbers against closed forms: the RBM's log Z (enumeration over v and h, AIS,
reverse AIS), the linear energy's closed-form log Z, the mixture's normalization, the naive table."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.likelihood.enumerate import all_binary_states
from gen_jax.models import make_model
from gen_jax.models.discrete import linear_log_z
from gen_jax.models.rbm import (
    ais_log_z,
    base_rate_logits,
    exact_log_z,
    exact_samples,
    free_log_prob,
    gibbs_chain,
    reverse_ais_log_z,
)


def _rbm_params(d, h, scale, seed=0):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    return {
        "W": scale * jax.random.normal(k1, (d, h)),
        "b": 0.5 * jax.random.normal(k2, (d,)),
        "c": 0.5 * jax.random.normal(k3, (h,)),
    }


def test_exact_log_z_matches_brute_force_over_visible_states():
    params = _rbm_params(9, 5, 0.8)
    v = jnp.asarray(all_binary_states(9), jnp.float32)
    brute = float(jax.scipy.special.logsumexp(free_log_prob(params, v)))
    assert exact_log_z(params, chunk=8) == pytest.approx(brute, abs=1e-4)


def test_exact_samples_follow_the_enumerated_distribution():
    params = _rbm_params(3, 4, 1.0, seed=1)
    v = jnp.asarray(all_binary_states(3), jnp.float32)
    p = np.asarray(jax.nn.softmax(free_log_prob(params, v)))
    s = np.asarray(exact_samples(params, jax.random.key(2), 40_000))
    freq = np.bincount((s @ np.array([4, 2, 1])).astype(int), minlength=8) / len(s)
    np.testing.assert_allclose(freq, p, atol=0.01)


def test_ais_and_reverse_ais_bracket_the_exact_log_z():
    """An RBM with 12 hidden units and strong weights (sd 1.5): forward AIS from the base rate within 0.05
    nats of the exact log Z, and the reverse run from exact samples above it, the forward mean log
    weight below it (both single-chain bounds hold in expectation, with a margin of their se)."""
    params = _rbm_params(30, 12, 1.5, seed=3)
    truth = exact_log_z(params)
    samples = exact_samples(params, jax.random.key(0), 200)
    base = base_rate_logits(np.asarray(samples))
    fwd = ais_log_z(params, base, jax.random.key(1), num_chains=200, num_temps=1000)
    rev = reverse_ais_log_z(params, base, samples, jax.random.key(2), num_temps=1000)
    assert abs(fwd.log_z - truth) < 0.05, (fwd.log_z, truth)
    assert abs(rev.log_z - truth) < 0.05, (rev.log_z, truth)
    assert fwd.log_z_bound <= truth + 3 * fwd.log_z_bound_se
    assert rev.log_z_bound >= truth - 3 * rev.log_z_bound_se
    # the bracket is informative: its width is the path's KL in both directions, well under a nat
    assert rev.log_z_bound - fwd.log_z_bound < 1.0


def test_ais_with_too_few_temperatures_opens_the_bracket():
    """Both bounds can fail visibly: with 10 temperatures the forward mean log weight sits well below
    the exact log Z and the reverse one well above (the path's KL), where 1000 close them."""
    params = _rbm_params(30, 12, 1.5, seed=3)
    truth = exact_log_z(params)
    samples = exact_samples(params, jax.random.key(0), 200)
    base = base_rate_logits(np.asarray(samples))
    fwd = ais_log_z(params, base, jax.random.key(1), num_chains=200, num_temps=10)
    rev = reverse_ais_log_z(params, base, samples, jax.random.key(2), num_temps=10)
    assert fwd.log_z_bound < truth - 0.15, (fwd.log_z_bound, truth)
    assert rev.log_z_bound > truth + 0.1, (rev.log_z_bound, truth)


def test_gibbs_chain_leaves_the_rbm_invariant():
    params = _rbm_params(3, 4, 1.0, seed=1)
    v = jnp.asarray(all_binary_states(3), jnp.float32)
    p = np.asarray(jax.nn.softmax(free_log_prob(params, v)))
    s = np.asarray(
        gibbs_chain(params, exact_samples(params, jax.random.key(5), 40_000), jax.random.key(6), 5)
    )
    freq = np.bincount((s @ np.array([4, 2, 1])).astype(int), minlength=8) / len(s)
    np.testing.assert_allclose(freq, p, atol=0.01)


def test_linear_energy_closed_form_log_z_matches_enumeration_on_3x3():
    model = make_model("linear_energy", 9)
    x = (np.random.default_rng(0).random((200, 9)) < 0.3).astype(np.float32)
    params = model.init(jax.random.key(0), x)
    params = {"w": params["w"] + jnp.linspace(-1.0, 1.0, 9), "b": jnp.asarray(0.7)}
    states = jnp.asarray(all_binary_states(9), jnp.float32)
    enumerated = float(jax.scipy.special.logsumexp(model.log_prob(params, states)))
    assert float(linear_log_z(params)) == pytest.approx(enumerated, abs=1e-4)
    # normalized, it is the independent Bernoulli model with logits w
    bern = make_model("bernoulli", 9)
    np.testing.assert_allclose(
        model.log_prob(params, states) - linear_log_z(params),
        bern.log_prob({"logits": params["w"]}, states),
        atol=1e-5,
    )


@pytest.mark.parametrize("name", ["bernoulli_mixture", "ar_bernoulli"])
def test_normalized_binary_models_sum_to_one(name):
    model = make_model(name, 8)
    x = (np.random.default_rng(1).random((64, 8)) < 0.4).astype(np.float32)
    params = model.init(jax.random.key(0), x)
    states = jnp.asarray(all_binary_states(8), jnp.float32)
    assert float(jax.scipy.special.logsumexp(model.log_prob(params, states))) == pytest.approx(0.0, abs=1e-5)


def test_persistent_cd_moves_the_free_energy_toward_the_data():
    """A few hundred PCD steps raise the data's log p~ relative to the exact log Z (the normalized
    log-likelihood rises from the base-rate start)."""
    from gen_jax.training import TrainConfig, train

    rng = np.random.default_rng(0)
    protos = (rng.random((2, 12)) < 0.5).astype(np.float32)
    x = np.abs(protos[rng.integers(0, 2, 2000)] - (rng.random((2000, 12)) < 0.05)).astype(np.float32)
    model = make_model("rbm", 12, num_hidden=4, num_chains=64, cd_steps=1)
    p0 = model.init(jax.random.key(0), x)
    ll = lambda p: float(jnp.mean(free_log_prob(p, jnp.asarray(x))) - exact_log_z(p))
    res = train(
        model, x, TrainConfig(steps=400, batch_size=64, lr=0.05, progress=False, steps_per_dispatch=100)
    )
    assert ll(res.params) > ll(p0) + 1.0, (ll(p0), ll(res.params))
