"""Energy-based models: DSM and SSM recover a Gaussian's score, the kind-based normalization finds a
known log Z, and the conv energy has the right shapes."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_models import raw_model

from gen_jax.core.capabilities import BoundedCorrection, ContinuousSpace, NoisePath
from gen_jax.likelihood.ais import AISConfig
from gen_jax.likelihood.normalize import NormalizeConfig, importance_log_z, normalize, with_log_z
from gen_jax.models import Kind
from gen_jax.training import TrainConfig, train

MEAN = np.array([0.5, -0.5], np.float32)
COV = np.array([[1.0, 0.5], [0.5, 0.8]], np.float32)
CFG = TrainConfig(
    steps=1000, batch_size=256, lr=3e-3, warmup_steps=50, steps_per_dispatch=250, progress=False
)


@pytest.fixture(scope="module")
def gauss_data():
    rng = np.random.default_rng(0)
    return (MEAN + rng.normal(size=(8000, 2)) @ np.linalg.cholesky(COV).T).astype(np.float32)


def _relative_error(model, params, x, target_cov):
    score = jax.vmap(lambda xi: model.internals["score"](params, xi))(jnp.asarray(x))
    target = -(x - MEAN) @ np.linalg.inv(target_cov).T
    return float(np.linalg.norm(np.asarray(score) - target) / np.linalg.norm(target))


@pytest.mark.parametrize("objective", ["dsm", "ssm"])
def test_score_matching_recovers_gaussian_score(gauss_data, objective):
    """DSM's optimum is the score of the data smoothed by N(0, sigma^2); SSM's is the data's own."""
    sigma = 0.5
    model = raw_model("ebm", (2,), objective=objective, sigma=sigma, hidden=(32, 32))
    assert model.kind == Kind.UNNORMALIZED and model.info["objective"] == objective
    result = train(model, gauss_data, CFG)
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    x = gauss_data[:500]
    smoothed = COV + sigma**2 * np.eye(2, dtype=np.float32)
    err_data, err_smoothed = (_relative_error(model, result.params, x, c) for c in (COV, smoothed))
    if objective == "dsm":
        assert err_smoothed < 0.12 < err_data, (err_smoothed, err_data)
    else:
        assert err_data < 0.12 < err_smoothed, (err_data, err_smoothed)


def test_normalize_finds_known_log_z_of_a_pure_quadratic_energy(gauss_data):
    """With the network's weights at zero the energy is the quadratic alone, |z|^2 / (2 s^2) with
    z = (x - mean) / scale: log Z = sum_d log(sqrt(2 pi) s scale_d). Grid and AIS must find it."""
    s = 1.5
    model = raw_model("ebm_dsm", (2,), prior_scale=s, hidden=(8,))
    params = model.init(jax.random.key(0), jnp.asarray(gauss_data))
    params = {**params, "net": jax.tree_util.tree_map(jnp.zeros_like, params["net"])}
    scale = np.asarray(params["stats"]["scale"])
    truth = float(np.sum(np.log(math.sqrt(2 * math.pi) * s * scale)))
    cfg = NormalizeConfig(ais=AISConfig(num_chains=500, num_temps=50), grid_n=300)
    box = (-5.0, 6.0, -6.0, 5.0)
    normalized, est = normalize(model, params, gauss_data, jax.random.key(1), box=box, cfg=cfg)
    assert est["log_z_grid"] == pytest.approx(truth, abs=2e-3)
    assert abs(est["log_z_ais"] - truth) < max(4 * est["log_z_ais_se"], 0.02), (est, truth)
    assert normalized.kind == Kind.ESTIMATE and normalized.log_prob_se == est["log_z_ais_se"]
    x = jnp.asarray(gauss_data[:5])
    shift = model.log_prob(params, x) - normalized.log_prob(params, x)
    np.testing.assert_allclose(np.asarray(shift), est["log_z_ais"], rtol=1e-5)
    # the grid's log Z when asked for, and models that are already normalized pass through unchanged
    tiny_ais = AISConfig(num_chains=16, num_temps=2, num_pilot=8)
    by_grid, _ = normalize(
        model, params, gauss_data, jax.random.key(1), box, dataclasses.replace(cfg, use="grid", ais=tiny_ais)
    )
    assert by_grid.info["log_z_method"] == "grid"
    flow = raw_model("gaussian", (2,))
    assert normalize(flow, None, gauss_data, jax.random.key(0))[0] is flow
    with pytest.raises(ValueError, match="already"):
        with_log_z(normalized, 0.0)


def test_energy_nets_shapes_and_ladder():
    conv = raw_model("ebm", (8, 8, 1), objective="dsm_ladder", conv_features=(4, 8), num_sigmas=3)
    x = jax.random.randint(jax.random.key(0), (4, 8, 8, 1), 0, 256).astype(jnp.uint8)
    params = conv.init(jax.random.key(1), x)
    assert conv.info["data"] == "8bit"  # images: a density of the dequantized values x + u
    with pytest.raises(ValueError, match="needs a PRNG key"):
        conv.log_prob(params, x)
    lp = conv.log_prob(params, x, jax.random.key(5))
    assert lp.shape == (4,) and not np.allclose(lp, conv.log_prob(params, x, jax.random.key(6)))
    loss, metrics = jax.jit(conv.loss)(params, x, jax.random.key(2))  # the score is a gradient in x
    assert np.isfinite(float(loss)) and "dsm_ladder" in metrics
    assert conv.info["architecture"].startswith("energy conv")  # its samples: the images smoke test
    # the vector ladder's annealed Langevin sampler
    vec = raw_model(
        "ebm_dsm_ladder",
        (2,),
        hidden=(8,),
        num_sigmas=3,
        sampler="annealed_langevin",
        sample_steps_per_level=5,
    )
    p = vec.init(jax.random.key(0), jnp.ones((16, 2)) * jnp.arange(16.0)[:, None])
    samples = jax.jit(vec.sample, static_argnums=2)(p, jax.random.key(1), 7)
    assert samples.shape == (7, 2) and np.all(np.isfinite(np.asarray(samples)))
    with pytest.raises(ValueError, match="objective"):
        raw_model("ebm", (2,), objective="contrastive_divergence")


def test_fourier_energy_reads_fixed_random_features():
    """energy_net="fourier": the MLP's first layer reads [z, sin(z W), cos(z W)] (D + 2F inputs), W a
    constant of the network, not a parameter: the same for every init key, so a saved model reloads."""
    from gen_jax.models.ebm import FOURIER_FEATURES

    model = raw_model("ebm_dsm", (3,), hidden=(8,), energy_net="fourier")
    x = jax.random.normal(jax.random.key(0), (32, 3))
    params = model.init(jax.random.key(1), x)
    shapes = [v.shape for v in jax.tree_util.tree_leaves(params["net"])]
    assert (3 + 2 * FOURIER_FEATURES, 8) in shapes and (3, FOURIER_FEATURES) not in shapes
    assert "Fourier features" in model.info["architecture"]
    # W is fixed: a second model built alone gives the same energies with the same parameters
    again = raw_model("ebm_dsm", (3,), hidden=(8,), energy_net="fourier")
    np.testing.assert_allclose(model.log_prob(params, x), again.log_prob(params, x), rtol=1e-6)
    plain = raw_model("ebm_dsm", (3,), hidden=(8,))
    assert (3, 8) in [v.shape for v in jax.tree_util.tree_leaves(plain.init(jax.random.key(1), x)["net"])]
    with pytest.raises(ValueError, match="vectors"):
        raw_model("ebm", (3, 3), objective="dsm")


def test_image_energy_log_z_is_the_quadratic_s_and_bits_need_no_offset():
    """An 8-bit image EBM with its network at zero is the confining quadratic alone: a Gaussian on
    v = x + u with known Z. AIS through the model surface (fixed key: a translate of the same
    density) finds it, and exp(log_prob - log Z) then sums (integrates over the unit bins) to one."""
    s = 0.5  # N(mean, (s scale)^2) on v: nearly all of it inside [0, 256)
    model = raw_model("ebm_dsm", (2, 2, 1), prior_scale=s, conv_features=(4,))
    x = jax.random.randint(jax.random.key(0), (512, 2, 2, 1), 0, 256).astype(jnp.uint8)
    params = model.init(jax.random.key(1), x)
    params = {**params, "net": jax.tree_util.tree_map(jnp.zeros_like, params["net"])}
    scale = float(params["stats"]["scale"])
    truth = 4 * math.log(math.sqrt(2 * math.pi) * s * scale)
    cfg = NormalizeConfig(ais=AISConfig(num_chains=400, num_temps=60, num_pilot=32))
    normalized, est = normalize(model, params, np.asarray(x, np.float32), jax.random.key(2), cfg=cfg)
    assert abs(est["log_z_ais"] - truth) < max(4 * est["log_z_ais_se"], 0.03), (est, truth)
    # the discrete model: P(x) = int over the bin of q(v) dv <= 1 summed over all 8-bit images;
    # one pixel at a time (the quadratic factorizes), the bin masses of one pixel sum to ~1
    one = raw_model("ebm_dsm", (1, 1, 1), prior_scale=s, conv_features=(4,))
    p1 = one.init(jax.random.key(1), x[:, :1, :1])
    p1 = {**p1, "net": jax.tree_util.tree_map(jnp.zeros_like, p1["net"])}
    z1 = 0.5 * math.log(2 * math.pi) + math.log(s * float(p1["stats"]["scale"]))
    values = jnp.arange(256, dtype=jnp.uint8).reshape(256, 1, 1, 1)
    keys = jax.random.split(jax.random.key(3), 64)  # E_u over the bin, by Monte Carlo
    mass = jnp.mean(jnp.stack([jnp.exp(one.log_prob(p1, values, k) - z1) for k in keys]), axis=0)
    assert 0.99 < float(jnp.sum(mass)) <= 1.0 + 1e-3  # the part of N(mean, .) outside [0, 256) is lost


def test_unet_energy_is_the_denoising_error_and_declares_its_noise_path():
    """EnergyUNet is |z - D(z)|^2 / 2 s^2 >= 0; with its last convolution at zero the denoiser is
    c_skip z, so E = s^2 |z|^2 / 2 (1 + s^2)^2 exactly. The model declares the noise path that AIS
    anneals along (`normalize.has_noise_path`)."""
    from gen_jax.likelihood.normalize import has_noise_path

    model = raw_model(
        "ebm_dsm_ladder",
        (8, 8, 1),
        energy_net="unet",
        unet_channels=(8,),
        unet_patch=1,
        unet_attention=False,
        sigma=0.5,
        sigma_max=50.0,
        continuous_sigma=True,
        prior_scale=1e6,
    )
    x = np.random.default_rng(0).integers(0, 256, (16, 8, 8, 1)).astype(np.float32)
    params = model.init(jax.random.key(0), x)
    mean, scale = float(params["stats"]["mean"]), float(params["stats"]["scale"])
    v = jnp.asarray(x[0]) + 0.3
    for sigma in (0.5, 7.0, 50.0):
        s = sigma / scale
        expect = s**2 * np.sum(((np.asarray(v) - mean) / scale) ** 2) / (2 * (1 + s**2) ** 2)
        tol = dict(rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(model.internals["energy"](params, v, sigma), expect, **tol)
        np.testing.assert_allclose(model.get(ContinuousSpace).log_density(params, v, sigma), -expect, **tol)
    path = model.get(NoisePath)
    assert has_noise_path(model) and (path.sigma_min, path.sigma_max) == (0.5, 50.0)
    loss, _ = jax.jit(model.loss)(params, jnp.asarray(x), jax.random.key(1))
    assert np.isfinite(float(loss))
    with pytest.raises(ValueError, match="dsm_ladder"):
        raw_model("ebm_dsm", (8, 8, 1), energy_net="unet")
    with pytest.raises(ValueError, match="energy_net"):
        raw_model("ebm_dsm_ladder", (2,), energy_net="unet")


@pytest.mark.parametrize("path,temps", [("auto", 30), ("noise", 400)])
def test_gaussian_quadratic_in_logit_space_has_its_exact_log_z_by_ais(path, temps):
    """quadratic="gaussian" on the logit scale: with the network at zero the energy is minus the log
    density of the init images' Gaussian smoothed at sigma, so log Z = 0; AIS in
    the coordinates that whiten it (either path) finds it with every chain weighted equally, and
    log_prob adds the logit's log-determinant, so the bits/dim need no offset."""
    from gen_jax.data.transforms import LogitTransform

    model = raw_model(
        "ebm_dsm_ladder",
        (6, 6, 1),
        logit_alpha=1e-3,
        quadratic="gaussian",
        conv_features=(4,),
        sigma=0.05,
        sigma_max=2.0,
        continuous_sigma=True,
    )
    rng = np.random.default_rng(0)
    x = np.clip(rng.normal(128, 60, (500, 6, 6, 1)) + 40 * rng.normal(size=(500, 1, 1, 1)), 0, 255)
    x = x.astype(np.uint8)
    params = model.init(jax.random.key(0), x)
    params = {**params, "net": jax.tree_util.tree_map(jnp.zeros_like, params["net"])}
    true = 0.0  # the Gaussian term is -log N(y; m, C + sigma^2 I), normalized at every sigma
    cfg = NormalizeConfig(ais=AISConfig(num_chains=32, num_temps=temps, num_pilot=8, path=path))
    normalized, est = normalize(model, params, x[:100], jax.random.key(1), None, cfg)
    if path == "auto":  # the geometric path: base and target are the same Gaussian
        assert abs(est["log_z_ais"] - true) < 1e-3 and est["log_z_ais_ess"] > 31.99, (est, true)
    else:  # down the noise levels: Gaussians of shrinking width, each step reweighted
        assert abs(est["log_z_ais"] - true) < 4 * est["log_z_ais_se"] + 0.05, (est, true)
    # log p(x) = -E(z) + log |dz/dv| - log Z, z the logit of the dequantized image
    key = jax.random.key(2)
    v = x[:4].astype(np.float32) + np.asarray(jax.random.uniform(key, x[:4].shape))
    z, ld = LogitTransform(1e-3).forward_and_log_det(jnp.asarray(v) / 256.0)
    energies = jax.vmap(lambda zi: model.internals["energy"](params, zi, 0.05))(z)
    expect = -energies + jnp.sum(ld.reshape(4, -1), 1) - 36 * math.log(256.0) - est["log_z_ais"]
    np.testing.assert_allclose(normalized.log_prob(params, x[:4], key), expect, rtol=1e-5)


def test_bounded_correction_bracket_holds_on_a_grid_and_ais_matches_the_grid():
    """correction_bound=B on the Gaussian quadratic: E = B tanh(f / B) - log N, so log Z lies in
    (-B, B) whatever the network is. A network with large outputs (scaled-up weights) gives a
    log Z, computed on a grid in 2D, well away from 0 yet inside the bracket the model declares;
    AIS and importance sampling from the Gaussian each agree with the grid (independent checks,
    which a wrong path, weight or base would fail)."""
    from gen_jax.likelihood.grid import log_integrate_2d

    bound = 2.0
    model = raw_model(
        "ebm_dsm_ladder",
        (2,),
        quadratic="gaussian",
        correction_bound=bound,
        sigma=0.05,
        sigma_max=1.0,
        hidden=(32, 32),
    )
    x = np.random.default_rng(0).normal(size=(400, 2)) * np.array([1.0, 0.3]) + np.array([0.5, -1.0])
    params = model.init(jax.random.key(0), x.astype(np.float32))
    params = {**params, "net": jax.tree_util.tree_map(lambda w: 4.0 * w, params["net"])}
    assert model.get(BoundedCorrection).bound == bound
    log_f = lambda y: -jax.vmap(lambda yi: model.internals["energy"](params, yi))(y)
    grid = log_integrate_2d(log_f, (-6.5, 7.5, -3.5, 1.5), n=600)
    assert 0.1 < abs(grid) < bound, grid  # the network moved log Z, within the bracket
    cfg = NormalizeConfig(ais=AISConfig(num_chains=64, num_temps=200, num_pilot=16))
    _, est = normalize(model, params, x[:200].astype(np.float32), jax.random.key(1), None, cfg)
    assert abs(est["log_z_ais"] - grid) < 4 * est["log_z_ais_se"] + 0.05, (est, grid)
    # importance sampling from the model's Gaussian: the second, chain-free estimator, on a non-zero log Z
    imp = importance_log_z(model, params, x[:200].astype(np.float32), jax.random.key(2), 20000, cfg)
    assert abs(imp["log_z"] - grid) < 4 * imp["se"] + 0.02 and imp["ess"] > 100, (imp, grid)
    with pytest.raises(ValueError, match="correction_bound"):
        raw_model("ebm_dsm_ladder", (2,), quadratic="gaussian", correction_bound=0.0)


def test_time_score_target_is_unbiased_for_the_exact_smoothed_gaussian():
    """The "dual" DSM term's target (time_score_weight): for y = x + sigma eps, the exact smoothed
    energy satisfies E[sigma dE/dsigma + |eps|^2 - D] = 0. The gaussian quadratic with the network at
    zero IS that energy for Gaussian data, so the residual averages to 0; a Gaussian twice as wide
    leaves a clear bias. The loss with the term is finite and larger than without it."""
    rng = np.random.default_rng(0)
    m, a = np.array([0.5, -1.0]), np.array([[1.0, 0.0], [0.6, 0.3]])
    x = (rng.normal(size=(20000, 2)) @ a.T + m).astype(np.float32)

    def residual_mean(params, sigma, scale=1.0):
        eps = jax.random.normal(jax.random.key(1), x.shape)
        y = jnp.asarray(x) + sigma * eps

        def r(yi, ei):
            de_ds = jax.grad(model.internals["energy"], argnums=2)(params, yi, sigma)
            return sigma * de_ds + jnp.sum(ei**2) - 2

        vals = np.asarray(jax.vmap(r)(y, eps))
        return vals.mean(), vals.std() / np.sqrt(len(vals))

    kw = dict(quadratic="gaussian", sigma=0.1, sigma_max=2.0, continuous_sigma=True, hidden=(8,))
    model = raw_model("ebm_dsm_ladder", (2,), time_score_weight=1.0, **kw)
    params = model.init(jax.random.key(0), x)
    params = {**params, "net": jax.tree_util.tree_map(jnp.zeros_like, params["net"])}
    for sigma in (0.3, 1.0):
        mean, se = residual_mean(params, sigma)
        assert abs(mean) < 4 * se, (sigma, mean, se)
    wide = {**params, "gaussian": {**params["gaussian"], "evals": 4.0 * params["gaussian"]["evals"]}}
    mean, se = residual_mean(wide, 1.0)
    assert abs(mean) > 10 * se, (mean, se)
    plain = raw_model("ebm_dsm_ladder", (2,), **kw)
    with_t, _ = model.loss(params, jnp.asarray(x[:512]), jax.random.key(2))
    without, _ = plain.loss(params, jnp.asarray(x[:512]), jax.random.key(2))
    assert np.isfinite(float(with_t)) and float(with_t) > float(without)
    with pytest.raises(ValueError, match="time_score_weight"):
        raw_model("ebm_dsm", (2,), time_score_weight=1.0)


def test_trust_verdict_follows_ess_and_agreement():
    """The headline's trust rule: AIS with ESS below 10% of its chains is undetermined; an independent
    importance-sampling estimate with enough ESS that contradicts AIS makes it 'disagree'; a weak IS
    estimate (ESS below 10% of its samples) cannot veto; agreeing estimates pass."""
    from gen_jax.evaluation.rows import trust_verdict

    est = dict(log_z_ais=10.0, log_z_ais_se=0.1, log_z_ais_ess=30.0, log_z_is=10.1, log_z_is_se=0.1)
    assert trust_verdict({**est, "log_z_ais_ess": 5.0}, 64) == "undetermined"
    assert trust_verdict({**est, "log_z_is_ess": 5000.0}, 64, 20000) == "ess_ok"
    assert trust_verdict({**est, "log_z_is": 12.0, "log_z_is_ess": 5000.0}, 64, 20000) == "disagree"
    assert trust_verdict({**est, "log_z_is": 12.0, "log_z_is_ess": 50.0}, 64, 20000) == "ess_ok"
    assert trust_verdict({**est, "log_z_is": None, "log_z_is_ess": None}, 64, 0) == "ess_ok"
