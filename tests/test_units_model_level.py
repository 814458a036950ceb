"""Bits/dim at the model level against hand-computed values, to 1e-3: a wrong offset (D log 256, D log 2,
D log alpha_0, a log-Jacobian) anywhere between a model's log_prob and the reported row fails here.

- a per-pixel categorical, through `evaluate_view`, against counts taken with numpy;
- an 8-bit energy model whose energy is a known diagonal Gaussian (zero network), through
  `evaluate_view` (which normalizes it), against the closed-form dequantization bound, with and
  without the logit transform, and against the discrete log P from Gaussian CDFs;
- the 8-bit diffusion ODE wrapper with the exact noise predictor of Gaussian data, against the
  analytic density of the same dequantized point, and its importance-weighted view against the
  discrete log P from CDFs.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm
from test_diffusion import _gaussian_process
from tiny_models import raw_model

from gen_jax.evaluation.rows import evaluate_view
from gen_jax.likelihood.dequantization import iw_dequantized
from gen_jax.likelihood.normalize import NormalizeConfig
from gen_jax.models import make_model
from gen_jax.models.diffusion import DiffusionOptions, make_likelihoods
from gen_jax.process import LinearLogSNR
from gen_jax.process.ode import ODEConfig

LN2 = math.log(2.0)


def _bpd(nats_per_example, d):
    return float(np.mean(nats_per_example)) / (d * LN2)


def test_pixel_categorical_bits_per_dim_equal_numpy_counts():
    rng = np.random.default_rng(0)
    shape = (3, 3, 1)
    probs = rng.dirichlet(np.full(256, 0.3), size=9)  # a peaked distribution per pixel
    draw = lambda n: np.stack([rng.choice(256, size=n, p=p) for p in probs], 1).reshape(n, *shape)
    train, test = draw(4000).astype(np.uint8), draw(500).astype(np.uint8)
    model = make_model("pixel_cat", shape)
    params = model.init(jax.random.key(0), jnp.asarray(train))
    row, per, _ = evaluate_view("pixel_cat", model, params, jnp.asarray(test), jax.random.key(1), num_dims=9)
    flat_train, flat_test = train.reshape(len(train), 9), test.reshape(len(test), 9)
    counts = np.stack([np.bincount(flat_train[:, i], minlength=256) for i in range(9)])
    theta = (counts + 1.0) / (len(train) + 256.0)
    nll = -np.sum(np.log(theta[np.arange(9), flat_test]), axis=1)
    np.testing.assert_allclose(per, nll, rtol=1e-5)
    assert row["likelihood_kind"] == "exact"
    assert abs(row["test_bpd"] - _bpd(nll, 9)) < 1e-3


def _gaussian_ebm(shape, mean, scale, **options):
    """An 8-bit energy model whose network is zero and whose Gaussian term is N(mean, diag scale^2)."""
    model = raw_model("ebm", shape, data="8bit", quadratic="gaussian", conv_features=(4,), **options)
    d = math.prod(shape)
    x0 = jnp.asarray(np.random.default_rng(1).integers(0, 256, (16, *shape)), jnp.float32)
    params = model.init(jax.random.key(0), x0)
    params["net"] = jax.tree_util.tree_map(jnp.zeros_like, params["net"])
    # the energy's Gaussian is N(mean, evals + sigma^2): evals chosen so that its variance is scale^2
    evals = jnp.asarray(scale, jnp.float32) ** 2 - model.info["sigma"] ** 2
    params["gaussian"] = {"mean": jnp.asarray(mean, jnp.float32), "evecs": jnp.eye(d), "evals": evals}
    return model, params


def _bound_per_pixel(x, log_density, n=64):
    """E_u [log density(y(x + u)) + log |dy/dv|] by Gauss-Legendre in u on [0, 1), per pixel."""
    nodes, w = np.polynomial.legendre.leggauss(n)
    u = 0.5 * (nodes + 1.0)
    return (log_density(x[..., None] + u) * (0.5 * w)).sum(-1)


@pytest.mark.parametrize("logit_alpha", [None, 0.05])
def test_gaussian_energy_model_bits_per_dim_equal_the_closed_form(logit_alpha):
    shape = (2, 2, 1)
    d = 4
    rng = np.random.default_rng(2)
    if logit_alpha is None:
        mean, scale = np.array([90.0, 128.0, 160.0, 60.0]), np.array([30.0, 45.0, 20.0, 35.0])
        to_y = lambda v: v
        log_dy_dv = lambda v: 0.0 * v
    else:
        mean, scale = np.array([-0.5, 0.0, 0.4, 1.0]), np.array([0.8, 1.2, 0.6, 1.0])
        a = logit_alpha
        to_y = lambda v: np.log((a + (1 - 2 * a) * v / 256) / (1 - a - (1 - 2 * a) * v / 256))
        log_dy_dv = lambda v: (
            np.log((1 - 2 * a) / 256) - np.log((a + (1 - 2 * a) * v / 256) * (1 - a - (1 - 2 * a) * v / 256))
        )
    model, params = _gaussian_ebm(shape, mean, scale, logit_alpha=logit_alpha)
    y_data = mean + scale * rng.standard_normal((3000, d))
    v = np.clip(np.floor(y_data if logit_alpha is None else _from_logit(y_data, logit_alpha)), 0, 255)
    x = v.reshape(-1, *shape)
    cfg = NormalizeConfig(use="is", is_samples=4096)
    row, per, normalized = evaluate_view(
        "ebm",
        model,
        params,
        jnp.asarray(x),
        jax.random.key(3),
        reference=jnp.asarray(x[:512]),
        normalize_cfg=cfg,
        num_dims=d,
    )
    assert abs(normalized.info["log_z"]) < 1e-4  # exp(-E) is a normalized Gaussian: log Z = 0
    logq = lambda v, i: norm.logpdf(to_y(v), mean[i], scale[i]) + log_dy_dv(v)
    flat = v.reshape(len(v), d)
    bound = sum(_bound_per_pixel(flat[:, i], lambda vv, i=i: logq(vv, i)) for i in range(d))
    assert abs(row["test_bpd"] - _bpd(-bound, d)) < 1e-3, (row["test_bpd"], _bpd(-bound, d))
    # the discrete log P (CDF differences) is above the bound, by less than the bound's dequantization slack
    cdf = lambda vv, i: norm.cdf(to_y(vv), mean[i], scale[i])
    log_p = sum(np.log(cdf(flat[:, i] + 1, i) - cdf(flat[:, i], i)) for i in range(d))
    assert np.all(log_p >= bound - 1e-4)
    assert 0 <= _bpd(-bound, d) - _bpd(-log_p, d) < 0.05


def _from_logit(y, a):
    return 256.0 * (jax.nn.sigmoid(y) - a) / (1 - 2 * a)


def test_diffusion_ode_wrapper_matches_the_analytic_discrete_density():
    """The 8-bit ODE wrapper adds D log alpha_0 and D log(2/256) to the ODE's log density of z_0; with
    the exact noise predictor of N(mu, diag s^2) data (encoded scale) every term has a closed form."""
    d = 3
    mu, s = np.array([-0.3, 0.1, 0.4]), np.array([0.25, 0.4, 0.3])
    opts = DiffusionOptions(
        data="8bit", gamma_min=-4.0, gamma_max=7.0
    )  # alpha_0^2 = 0.98: D log alpha_0 counts
    schedule = LinearLogSNR(opts.gamma_min, opts.gamma_max)
    process = _gaussian_process(schedule, jnp.asarray(mu), jnp.diag(jnp.asarray(s**2)))
    _, ode_and_nfe = make_likelihoods(opts, lambda context=None: process, d)
    cfg = ODEConfig(rtol=1e-6, atol=1e-6, divergence="exact")
    rng = np.random.default_rng(4)
    x = np.clip(np.floor(256 * (mu + s * rng.standard_normal((200, d)) + 1) / 2), 0, 255).astype(np.float32)
    key = jax.random.key(5)
    lp, _ = jax.jit(lambda x, k: ode_and_nfe({}, x, k, cfg))(jnp.asarray(x), key)
    # the model's density of y = z_0 / alpha_0: with the exact predictor the flow is linear per
    # dimension, z_1 = m_1 + sqrt(v_1 / v_0) (z_0 - m_0) (m_t, v_t the data's marginal at t), and the
    # ODE starts from N(0, 1) at t = 1, so y is Gaussian with these moments
    a0, a1 = (float(jax.nn.sigmoid(-schedule({}, jnp.asarray(t)))) for t in (0.0, 1.0))
    m0, m1 = math.sqrt(a0) * mu, math.sqrt(a1) * mu
    v0, v1 = a0 * s**2 + 1 - a0, a1 * s**2 + 1 - a1
    y_mean, y_sd = (m0 - np.sqrt(v0 / v1) * m1) / math.sqrt(a0), np.sqrt(v0 / (v1 * a0))
    u = np.asarray(jax.random.uniform(jax.random.split(key)[0], x.shape))  # the wrapper's draw
    y = 2.0 * (x + u) / 256.0 - 1.0
    expected = norm.logpdf(y, y_mean, y_sd).sum(1) + d * math.log(2.0 / 256)
    np.testing.assert_allclose(np.asarray(lp), expected, atol=1e-3)
    # k = 64 dequantization draws, importance-weighted: the discrete log P, from CDF differences
    ode_lp = lambda params, x, key: ode_and_nfe(params, x, key, cfg)[0]
    lp64 = jax.jit(lambda x, k: iw_dequantized(ode_lp, 64)({}, x, k))(jnp.asarray(x), key)
    edges = lambda v: 2.0 * v / 256.0 - 1.0
    cdf = lambda v: norm.cdf(edges(v), y_mean, y_sd)
    log_p = np.log(cdf(x + 1) - cdf(x)).sum(1)
    assert abs(_bpd(-np.asarray(lp64), d) - _bpd(-log_p, d)) < 1e-3
