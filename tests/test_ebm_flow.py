"""The energy model on a Glow base (`gen_jax.models.ebm_flow`) against answers known in closed form.

- A constant correction c0 gives log Z = -c0 exactly: importance sampling from the base and AIS from it
  must both return it, and the normalized model must then be the base Glow itself, number for number.
- A random correction: importance sampling and AIS, two independent estimators, must agree.
- NCE's loss in log Z is minimised at the true normalizer when the correction is the true log-ratio.
"""

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
