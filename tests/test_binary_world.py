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
    collapsed_sweep,
    exact_log_z,
    exact_samples,
    free_log_prob,
    gibbs_chain,
    hidden_path_log_density,
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


@pytest.mark.parametrize("collapsed_from", [1.0, 0.8])
def test_ais_and_reverse_ais_bracket_the_exact_log_z(collapsed_from):
    """An RBM with 20 hidden units (2^20 hidden states enumerated) and strong weights (sd 1.5): forward
    AIS from the base rate within 0.05 nats of the exact log Z, and the reverse run from exact samples
    above it, the forward mean log weight below it (both single-chain bounds hold in expectation, with
    a margin of their se). Block Gibbs throughout (collapsed_from = 1), or collapsed Gibbs on h with v
    summed out from beta = 0.8 on: the switch between the two must not bias either direction."""
    params = _rbm_params(30, 20, 1.5, seed=3)
    truth = exact_log_z(params)
    samples = exact_samples(params, jax.random.key(0), 200)
    base = base_rate_logits(np.asarray(samples))
    fwd = ais_log_z(params, base, jax.random.key(1), 200, 1000, collapsed_from)
    rev = reverse_ais_log_z(params, base, samples, jax.random.key(2), 1000, collapsed_from)
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


def test_collapsed_sweep_leaves_the_hidden_marginal_invariant():
    """One single-site Gibbs sweep on h (v summed out) at beta = 0.6 of the base-rate path keeps h's
    enumerated marginal f_beta(h) / Z_beta, from exact draws of it."""
    params = _rbm_params(4, 3, 1.5, seed=4)
    base = jnp.asarray([0.5, -1.0, 0.3, 2.0])
    h = jnp.asarray(all_binary_states(3), jnp.float32)
    p = np.asarray(jax.nn.softmax(hidden_path_log_density(params, base, h, h @ params["W"].T, 0.6)))
    draws = h[jax.random.categorical(jax.random.key(7), jnp.log(jnp.asarray(p)), shape=(40_000,))]
    after, wh = collapsed_sweep(params, base, draws, draws @ params["W"].T, jax.random.key(8), 0.6)
    np.testing.assert_allclose(np.asarray(wh), np.asarray(after @ params["W"].T), atol=1e-5)
    freq = np.bincount((np.asarray(after) @ np.array([4, 2, 1])).astype(int), minlength=8) / len(after)
    np.testing.assert_allclose(freq, p, atol=0.01)
    # the sweep moves: a chain does not keep its state (else invariance would be trivial)
    assert np.mean(np.any(np.asarray(after) != np.asarray(draws), axis=1)) > 0.2


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


def test_rbm_is_normalized_through_its_own_partition_function():
    """The evaluation layer normalizes an RBM by its `PartitionFunction`: exact (kind exact) with few
    hidden units, AIS (kind estimate) with reverse AIS beside it otherwise; both agree with enumeration."""
    from gen_jax.core import Kind
    from gen_jax.evaluation.rows import evaluate_view
    from gen_jax.likelihood.ais import AISConfig
    from gen_jax.likelihood.normalize import NormalizeConfig

    x = (np.random.default_rng(0).random((256, 16)) < 0.3).astype(np.float32)
    cfg = NormalizeConfig(ais=AISConfig(num_chains=100, num_temps=500))
    small = make_model("rbm", 16, num_hidden=6)
    params = {**small.init(jax.random.key(0), x), "W": 0.8 * jax.random.normal(jax.random.key(1), (16, 6))}
    row, per, view = evaluate_view(
        "rbm", small, params, x[:64], jax.random.key(2), reference=x, normalize_cfg=cfg
    )
    assert view.kind == Kind.EXACT and row["log_z_method"] == "enumeration of the hidden states"
    truth = exact_log_z(params)
    assert row["log_z_grid"] == pytest.approx(truth, abs=1e-6)
    assert abs(row["log_z_ais"] - truth) < 0.05 and row["log_z_reverse_start"] == "exact samples"
    np.testing.assert_allclose(per, truth - np.asarray(free_log_prob(params, jnp.asarray(x[:64]))), rtol=1e-5)
    big = make_model("rbm", 16, num_hidden=24, sample_steps=200)
    params = {**big.init(jax.random.key(0), x), "W": 0.3 * jax.random.normal(jax.random.key(3), (16, 24))}
    row, _, view = evaluate_view(
        "rbm", big, params, x[:64], jax.random.key(2), reference=x, normalize_cfg=cfg
    )
    assert view.kind == Kind.ESTIMATE and row["log_z_method"] == "ais" and row["log_z_grid"] is None
    states = jnp.asarray(all_binary_states(16), jnp.float32)  # 16 visible bits: enumerate v instead
    brute = float(jax.scipy.special.logsumexp(free_log_prob(params, states)))
    assert abs(row["log_z_ais"] - brute) < 0.05 and abs(row["log_z_reverse"] - brute) < 0.05
    assert "approximate" in row["log_z_reverse_start"]


def test_defensive_mass_estimate_finds_mass_the_bernoulli_proposal_misses():
    """sum_x f(x) over {0,1}^D by importance sampling: a function equal to 1 on every state has mass 2^D.
    From a Bernoulli proposal fitted to sparse data the plain estimate lands far below; the defensive
    mixture with the uniform recovers D ln 2. On 12 bits both are checked against enumeration."""
    from gen_jax.likelihood.importance import binary_log_mass

    d = 40
    logits = jnp.full((d,), -3.0)  # the data are mostly zeros
    ones = lambda x: jnp.zeros(x.shape[0])
    mixed = binary_log_mass(ones, logits, jax.random.key(0), 20_000, uniform_share=0.5)
    plain = binary_log_mass(ones, logits, jax.random.key(0), 20_000, uniform_share=0.0)
    assert abs(mixed["log_z"] - d * np.log(2)) < 0.05
    assert plain["log_z"] < d * np.log(2) - 5.0  # misses almost all of the 2^40 states
    w = jax.random.normal(jax.random.key(1), (12,))
    log_f = lambda x: jax.nn.log_sigmoid(x @ w - 1.0)
    truth = float(jax.scipy.special.logsumexp(log_f(jnp.asarray(all_binary_states(12), jnp.float32))))
    est = binary_log_mass(log_f, jnp.zeros(12), jax.random.key(2), 20_000)
    assert abs(est["log_z"] - truth) < 4 * est["se"] + 0.01


def test_bernoulli_vae_iwae_rises_with_k_while_the_prior_average_stays_below():
    """The seed's point on the Bernoulli VAE after a short training: the IWAE estimate of log p(x) rises
    with k (NLL falls) and sits above the ELBO; averaging p(x | z) over the prior stays far below it
    at every affordable k."""
    from gen_jax.evaluation.latent import estimator_curves, summarize
    from gen_jax.training import TrainConfig, train

    rng = np.random.default_rng(0)
    protos = rng.random((4, 28, 28, 1)) < 0.3
    x = (protos[rng.integers(0, 4, 512)] ^ (rng.random((512, 28, 28, 1)) < 0.05)).astype(np.uint8) * 255
    model = make_model(
        "vae_bin", (28, 28, 1), latent_dim=4, encoder_channels=[4], decoder_channels=[4], dense_width=32
    )
    cfg = TrainConfig(steps=200, batch_size=64, lr=3e-3, progress=False, steps_per_dispatch=100)
    params = train(model, x, cfg).params
    ks = (1, 10, 100, 1000)
    rows = summarize(estimator_curves(model, params, x[:16], ks, repeats=1, chunk=100), ks, 784)
    iwae = [r["nll"] for r in rows if r["estimator"].startswith("IWAE")]
    prior = [r["nll"] for r in rows if r["estimator"].startswith("prior")]
    elbo = next(r["nll"] for r in rows if r["estimator"].startswith("ELBO"))
    assert iwae[0] > iwae[1] > iwae[2] > iwae[3] and iwae[3] < elbo
    assert min(prior) > iwae[-1] + 20.0, (prior, iwae)  # tens of nats below, even at k = 1000


def test_binary_study_smoke(tmp_path, monkeypatch):
    """`make binary` end to end on the smoke preset with synthetic IDX files: every row, the kinds,
    the log Z table, the sigmoid's mass, IWAE rows and the figures; a second run reuses everything."""
    from experiments import binary
    from experiments.configs.binary import PRESETS
    from gen_jax.data import images as images_data
    from gen_jax.evaluation.config import resolve
    from tests.test_experiment_images import _no_tfds, fake_fashion_mnist

    monkeypatch.setattr("tensorflow_datasets.data_source", _no_tfds)
    sizes = {"train": 512, "test": 64}
    for name, folder in (("fashion_mnist", "fashion-mnist"), ("mnist", "mnist")):
        monkeypatch.setitem(images_data.DATASETS, name, (name, folder, sizes))
    data_dir = fake_fashion_mnist(tmp_path / "data", n_train=512, n_test=64)
    fake_fashion_mnist(tmp_path / "mnist_src", n_train=512, n_test=64, seed=1)
    (tmp_path / "mnist_src" / "fashion-mnist").rename(data_dir / "mnist")
    cfg = resolve(PRESETS["smoke"], [f"out={tmp_path / 'out'}", f"data_dir={data_dir}"])
    rows = binary.run(cfg)
    kinds = {r["model"]: r["kind"] for r in rows}
    assert kinds["naive table"] == "exact" and kinds["linear_energy"] == "exact"
    assert {r["model"]: r.get("log_z_method") for r in rows}["linear_energy"] == "closed form"
    assert kinds["linear_energy (raw)"] == "unnormalized" and kinds["rbm/check"] == "exact"
    assert (
        kinds["rbm"] == "estimate"
        and kinds["vae_bin"] == "lower_bound"
        and kinds["vae_bin/iwae16"] == "estimate"
    )
    assert all(np.isfinite(r["test_nll"]) for r in rows)
    for name in ("results.md", "results.json", "iwae.json", "samples.png", "iwae.png"):
        assert (tmp_path / "out" / name).exists(), name
    again = binary.run(cfg)
    assert [r["test_nll"] for r in again] == [r["test_nll"] for r in rows]
