"""The energy model on a Glow base (`gen_jax.models.ebm_flow`) against answers known in closed form.

- A constant correction c0 gives log Z = -c0 exactly: importance sampling from the base and AIS from it
  must both return it, and the normalized model must then be the base Glow itself, number for number.
- A random correction: importance sampling and AIS, two independent estimators, must agree.
- NCE's loss in log Z is minimised at the true normalizer when the correction is the true log-ratio.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from tiny_models import CASES, build

from gen_jax.core.capabilities import ContinuousSpace, NormalizedBase
from gen_jax.likelihood.ais import AISConfig
from gen_jax.likelihood.normalize import NormalizeConfig, ais_log_z, importance_log_z, with_log_z
from gen_jax.models import make_model
from gen_jax.models.ebm_flow import nce_loss

CFG = NormalizeConfig(ais=AISConfig(num_chains=32, num_temps=60, num_pilot=16), is_chunk=500)


def _last_dense(params_f) -> str:
    return max((k for k in params_f if k.startswith("Dense_")), key=lambda k: int(k.split("_")[1]))


def _with_output(params, kernel_scale: float, bias: float):
    """The correction network's last layer scaled (0: a constant output `bias`)."""
    f = dict(params["f"])
    last = _last_dense(f)
    f[last] = {"kernel": f[last]["kernel"] * kernel_scale, "bias": jnp.full_like(f[last]["bias"], bias)}
    return {**params, "f": f}


def test_constant_correction_gives_the_closed_form_log_z_and_the_base_itself():
    model, params, x = build("ebm_flow")
    params = _with_output(params, 0.0, 0.7)
    bound = 50.0
    log_z = -bound * math.tanh(0.7 / bound)
    key = jax.random.key(0)
    imp = importance_log_z(model, params, x, key, 1000, CFG)
    assert abs(imp["log_z"] - log_z) < 1e-4 and imp["ess"] > 999, imp
    res = ais_log_z(model, params, x, key, CFG)
    assert abs(res.log_z - log_z) < 1e-3, (res.log_z, log_z)
    # normalized, it is the base Glow: the same dequantization draw, the same number
    base = make_model("glow", CASES["ebm_flow"][0], **CASES["ebm_flow"][1]["base_options"])
    xb = jnp.asarray(x[:8])
    normalized = with_log_z(model, log_z, 0.0)
    np.testing.assert_allclose(
        normalized.log_prob(params, xb, key), base.log_prob(params["base"], xb, key), rtol=1e-5, atol=1e-3
    )


def test_importance_sampling_and_ais_agree_on_a_random_correction():
    model, params, x = build("ebm_flow")
    params = _with_output(params, 30.0, 0.0)
    key = jax.random.key(1)
    base, space = model.get(NormalizedBase), model.get(ContinuousSpace)
    draws = base.sample(params, key, 256)
    lp = jax.vmap(lambda v: space.log_density(params, v))(draws)
    spread = float(np.std(np.asarray(lp - base.log_prob(params, draws))))
    assert spread > 0.5, spread  # a correction that matters, so that agreement is not automatic
    imp = importance_log_z(model, params, x, key, 4000, CFG)
    res = ais_log_z(model, params, x, key, CFG)
    se = math.hypot(imp["se"], res.log_z_se)
    assert abs(imp["log_z"] - res.log_z) < 3 * se + 0.05, (imp, res.log_z, res.log_z_se)
    assert -50 < imp["log_z"] < 50 and -50 < res.log_z < 50
    # AIS in the Glow's latent space agrees too; from_latent is the Glow's own map z -> v
    latent = dataclasses.replace(CFG, ais=dataclasses.replace(CFG.ais, flow_coordinates="latent"))
    lat = ais_log_z(model, params, x, key, latent)
    se = math.hypot(imp["se"], lat.log_z_se)
    assert abs(imp["log_z"] - lat.log_z) < 3 * se + 0.05, (imp, lat.log_z, lat.log_z_se)
    z = jax.random.normal(jax.random.key(2), (model.num_dims,))
    nb = model.get(NormalizedBase)  # log q(g(z)) + log |dg/dz| = log N(z), via the bijector's log-det
    fe = nb.from_latent.__self__
    v, log_det = fe.base.internals["arch"].encoder(params["base"]).bijectors[0].inverse_and_log_det(z)
    np.testing.assert_allclose(nb.from_latent(params, z), v, rtol=1e-6)
    log_n = -0.5 * jnp.sum(z**2) - 0.5 * model.num_dims * math.log(2 * math.pi)
    np.testing.assert_allclose(nb.log_prob(params, v[None])[0] + log_det, log_n, rtol=1e-5, atol=1e-3)


def test_nce_loss_is_minimised_at_the_true_log_z():
    """Data N(mu, 1), noise N(0, 1): the log-ratio is mu v - mu^2 / 2, so with correction = -(that) the
    NCE loss in c (the learned log Z) is minimised at c = 0, for any noise ratio."""
    rng = np.random.default_rng(0)
    mu, n = 0.8, 200_000
    for ratio in (1, 4):
        data = rng.normal(mu, 1.0, n).astype(np.float32)
        noise = rng.normal(0.0, 1.0, n * ratio).astype(np.float32)
        corr = lambda v: -(mu * v - mu**2 / 2)
        grid = np.linspace(-0.3, 0.3, 61)
        losses = [float(nce_loss(corr(data), corr(noise), jnp.float32(c), ratio)[0]) for c in grid]
        assert abs(grid[int(np.argmin(losses))]) <= 0.03, (ratio, grid[int(np.argmin(losses))])
        # and it is a real minimum: off by 0.3 costs more than the sampling noise
        assert min(losses[0], losses[-1]) - min(losses) > 1e-3


def test_tempered_path_is_the_geometric_path():
    """AIS's path for a model on a normalized base, base x exp(b c), is base^(1 - b) (base e^c)^b."""
    from gen_jax.likelihood.normalize import target
    from gen_jax.sampling.anneal import geometric_path, tempered_path

    model, params, x = build("ebm_flow")
    params = _with_output(params, 30.0, 0.0)
    t = target(model, params, x, jax.random.key(0), CFG)
    betas = np.array([0.0, 0.3, 1.0], np.float32)
    ours, geometric = tempered_path(t.base, t.correction, betas), geometric_path(t.log_density, t.base, betas)
    v = t.base.sample(jax.random.key(2), 3)
    for theta in betas[:, None]:
        a = jax.vmap(lambda vi, th=theta: ours.log_density(vi, th))(v)
        b = jax.vmap(lambda vi, th=theta: geometric.log_density(vi, th))(v)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-3)


def _ebm_nsf_2d(kernel_scale: float, bias: float):
    """A 2D `ebm_nsf` at init on a banana-shaped sample, its correction's last layer rescaled."""
    rng = np.random.default_rng(3)
    a = rng.normal(size=(2000, 2)).astype(np.float32)
    x = np.stack([a[:, 0], 0.5 * a[:, 1] + 0.4 * a[:, 0] ** 2], axis=1)
    model = make_model("ebm_nsf", 2, base_options=dict(num_layers=2, hidden=(16,), num_bins=4), hidden=(16,))
    params = model.init(jax.random.key(0), x)
    inner = params["model"]
    inner = {**inner, "f": _with_output({"f": inner["f"]["MLP_0"]}, kernel_scale, bias)["f"]}
    return model, {**params, "model": {**inner, "f": {"MLP_0": inner["f"]}}}, x


def test_vector_energy_on_an_nsf_normalizes_three_ways_and_is_the_nsf_with_a_constant_correction():
    """`ebm_nsf` (standardized 2D data): with a random correction, the grid (midpoint rule in the data
    space), importance sampling from the NSF and AIS from it agree; with a constant correction c0 all
    give -B tanh(c0 / B) and the normalized model is the NSF itself."""
    from gen_jax.likelihood.grid import log_integrate_2d

    key = jax.random.key(4)
    model, params, x = _ebm_nsf_2d(0.0, 0.7)
    log_z = -10.0 * math.tanh(0.7 / 10.0)
    imp = importance_log_z(model, params, x, key, 1000, CFG)
    assert abs(imp["log_z"] - log_z) < 1e-4 and imp["ess"] > 999, imp
    normalized = with_log_z(model, log_z, 0.0)
    np.testing.assert_allclose(
        normalized.log_prob(params, x[:16]), model.estimators["base"].log_prob(params, x[:16]), atol=1e-4
    )
    model, params, x = _ebm_nsf_2d(20.0, 0.0)
    lp = model.log_prob(params, x[:512])
    spread = float(np.std(np.asarray(lp - model.estimators["base"].log_prob(params, x[:512]))))
    assert spread > 0.5, spread  # a correction that matters
    lo, hi = x.min(0) - 3.0, x.max(0) + 3.0
    grid = log_integrate_2d(jax.jit(lambda v: model.log_prob(params, v)), (lo[0], hi[0], lo[1], hi[1]), 400)
    imp = importance_log_z(model, params, x, key, 8000, CFG)
    res = ais_log_z(model, params, x, key, CFG)
    assert abs(imp["log_z"] - grid) < 3 * imp["se"] + 0.03, (imp, grid)
    assert abs(res.log_z - grid) < 3 * res.log_z_se + 0.03, (res.log_z, res.log_z_se, grid)
    # AIS in the NSF's latent space (y = g(z), q = N(0, I) there): the same log Z; its chains end in y
    latent = dataclasses.replace(CFG, ais=dataclasses.replace(CFG.ais, flow_coordinates="latent"))
    res = ais_log_z(model, params, x, key, latent)
    assert abs(res.log_z - grid) < 3 * res.log_z_se + 0.03, (res.log_z, res.log_z_se, grid)
    assert res.positions.shape == (CFG.ais.num_chains, 2)
    base = model.get(NormalizedBase)  # from_latent is q's own map: log q(g(z)) + log |dg/dz| = log N(z)
    for z in jax.random.normal(jax.random.key(5), (3, 2)):
        jac = jax.jacfwd(lambda z: base.from_latent(params, z))(z)
        log_q = base.log_prob(params, base.from_latent(params, z)[None])[0]
        lhs = log_q + jnp.linalg.slogdet(jac)[1]
        np.testing.assert_allclose(lhs, -0.5 * jnp.sum(z**2) - math.log(2 * math.pi), atol=1e-4)
