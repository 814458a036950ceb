"""The contrast experiment's demonstrations, and the tiny discrete world where everything is exact."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import demos as demos_exp
from experiments.configs.contrast import DEMO_PRESETS
from gen_jax.data.patches import empirical_entropy, random_patches
from gen_jax.evaluation.config import resolve
from gen_jax.likelihood.ais import AISConfig
from gen_jax.likelihood.enumerate import all_binary_states
from gen_jax.likelihood.normalize import NormalizeConfig, normalize
from gen_jax.models import Kind, make_model


def test_naive_mle_diverges_while_score_matching_converges(tmp_path):
    """The demonstration of `make contrast` (smoke size): maximizing raw log p~ runs away, the true
    NLL (raw + grid log Z) gets worse; the same network under DSM improves; a sigmoid output
    integrates to far more than 1."""
    cfg = resolve(DEMO_PRESETS["smoke"], [f"out={tmp_path}"])
    demos = demos_exp.run(cfg)
    naive, dsm = demos["mle"]["ebm_naive_mle"], demos["mle"]["ebm_dsm"]
    assert len(naive["raw_nll"]) >= 3
    assert np.all(np.diff(naive["raw_nll"]) < 0), naive["raw_nll"]  # the raw objective keeps falling
    assert naive["raw_nll"][-1] < naive["raw_nll"][0] - 10.0
    assert naive["true_nll"][-1] > naive["true_nll"][0] > demos["true_entropy"] + 10.0, naive["true_nll"]
    assert dsm["true_nll"][-1] < dsm["true_nll"][0] < demos["true_entropy"] + 2.0, dsm["true_nll"]
    assert demos["sigmoid"]["grid_integral"] > 5.0
    rows = demos_exp.rows(demos)
    assert [r["model"] for r in rows] == ["ebm_naive_mle", "ebm_dsm", "sigmoid_net"]
    assert (tmp_path / "naive_mle_diverges.png").exists() and (
        tmp_path / "sigmoid_not_a_density.png"
    ).exists()


@pytest.fixture(scope="module")
def binary_data():
    """Correlated 4-bit vectors: a noisy copy of one random bit."""
    rng = np.random.default_rng(0)
    first = rng.integers(0, 2, (3000, 1))
    flips = rng.random((3000, 4)) < np.array([0.0, 0.1, 0.2, 0.3])
    return (first ^ flips).astype(np.float32)


def test_discrete_models_are_exactly_normalized(binary_data):
    states = jnp.asarray(all_binary_states(4))
    x = binary_data
    counts = np.bincount((x @ np.array([8, 4, 2, 1])).astype(int), minlength=16)
    table = make_model("freq_table", (4,), alpha=0.5)
    p_table = table.init(jax.random.key(0), x)
    expected = np.log((counts + 0.5) / (counts.sum() + 16 * 0.5))
    np.testing.assert_allclose(np.asarray(table.log_prob(p_table, states)), expected, atol=1e-5)
    for name in ("bernoulli", "ar_bernoulli"):
        m = make_model(name, (4,))
        params = m.init(jax.random.key(1), x)
        assert float(jax.scipy.special.logsumexp(m.log_prob(params, states))) == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ValueError, match="binarize"):
        table.init(jax.random.key(0), x + 0.5)


@pytest.mark.parametrize("name", ["ebm_exact_ml", "ebm_pseudo_lik"])
def test_binary_ebm_normalized_by_enumeration(binary_data, name):
    """Normalizing by enumeration gives an EXACT model summing to one; the pseudo-likelihood loss
    equals the sum of brute-force conditionals; AIS (Gibbs) finds the enumerated log Z."""
    model = make_model(name, (4,), hidden=(8,))
    assert model.kind == Kind.UNNORMALIZED
    params = model.init(jax.random.key(0), binary_data)
    params = jax.tree_util.tree_map(lambda p: 3.0 * p, params)  # a less flat energy
    cfg = NormalizeConfig(ais=AISConfig(num_chains=1000, num_temps=20))
    normalized, est = normalize(model, params, binary_data, jax.random.key(1), cfg=cfg)
    assert normalized.kind == Kind.EXACT and est["log_z_method"] == "enumeration"
    states = jnp.asarray(all_binary_states(4))
    total = float(jax.scipy.special.logsumexp(normalized.log_prob(params, states)))
    assert total == pytest.approx(0.0, abs=1e-5)
    assert abs(est["log_z_ais"] - est["log_z_grid"]) < max(4 * est["log_z_ais_se"], 0.02), est
    batch = jnp.asarray(binary_data[:64])
    loss = float(model.loss(params, batch, jax.random.key(2))[0])
    lp_states = np.asarray(model.log_prob(params, states), np.float64)
    idx = (np.asarray(batch) @ np.array([8, 4, 2, 1])).astype(int)
    if name == "ebm_pseudo_lik":
        brute = 0.0
        for i in range(4):
            other = idx ^ (1 << (3 - i))
            brute -= np.mean(lp_states[idx] - np.logaddexp(lp_states[idx], lp_states[other]))
    else:
        brute = -np.mean(lp_states[idx] - np.log(np.sum(np.exp(lp_states))))
    assert loss == pytest.approx(brute, rel=1e-4)


def test_patches_and_empirical_entropy():
    images = np.arange(2 * 5 * 6, dtype=np.uint8).reshape(2, 5, 6)
    p = random_patches(images, 50, 3, np.random.default_rng(0))
    assert p.shape == (50, 9)
    # each patch is a contiguous 3x3 window: consecutive columns differ by 1, rows by 6
    rows = p.reshape(50, 3, 3).astype(int)
    assert np.all(np.diff(rows, axis=2) == 1) and np.all(np.diff(rows, axis=1) == 6)
    x = np.array([[0, 0], [0, 1], [0, 1], [1, 1]])
    assert empirical_entropy(x) == pytest.approx(-(0.25 * math.log(0.25) * 2 + 0.5 * math.log(0.5)))
    with pytest.raises(ValueError, match="exceeds"):
        random_patches(images, 5, 7, np.random.default_rng(0))


def test_contrast_smoke_every_objective_and_the_tiny_world(tmp_path):
    """`make contrast` end to end on the smoke preset (moons; the 3x3 world from synthetic IDX files):
    the new objectives' rows (NCE with its learned log Z, CD with short- and long-run MMD),
    AIS beside the grid and enumeration, and the checks written from the rows."""
    from experiments import contrast
    from experiments.configs.contrast import PRESETS
    from tests.test_experiment_images import fake_fashion_mnist

    data_dir = fake_fashion_mnist(tmp_path / "data", n_train=500, n_test=200)
    overrides = ["models=[nsf,ebm_nce,ebm_cd]", "patches.models=[ebm_bin_nce,ebm_bin_cd]", "parzen_samples=0"]
    cfg = resolve(PRESETS["smoke"], [f"out={tmp_path / 'out'}", f"patches.data_dir={data_dir}", *overrides])
    rows = {(r["dataset"], r["model"]): r for r in contrast.run(cfg)}
    nce, cd = rows[("moons", "ebm_nce")], rows[("moons", "ebm_cd")]
    assert nce.get("log_z_learned") is not None and cd.get("log_z_learned") is None
    assert cd["mmd_short_run"] is not None and cd["mmd_long_run"] is not None
    for name in ("ebm_nce", "ebm_cd"):  # DSM and SSM rows: tests/test_experiment_toy2d.py, test_ebm.py
        r = rows[("moons", name)]
        assert (
            r["likelihood_kind"] == "estimate" and np.isfinite(r["test_nll"]) and r["log_z_grid"] is not None
        )
    for name in ("ebm_bin_nce", "ebm_bin_cd"):
        assert rows[("patches3x3", name)]["likelihood_kind"] == "exact"
    md = (tmp_path / "out" / "results.md").read_text()
    assert "learned log Z - grid/enumerated log Z" in md and "best pure energy model" in md
