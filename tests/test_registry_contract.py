"""The contract every registered model keeps (flowjax's pattern: one registry drives the checks).

For every entry of MODELS, on a tiny instance: init, loss, log_prob, sample and every estimator give
finite values of the declared shapes under jit, log_prob under vmap equals it batch by batch, the
kind is declared, the capabilities keep their invariants, strict dtype promotion holds, and the
vector models compute the same numbers in float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_models import CASES, build, registered

from gen_jax.core import Kind
from gen_jax.core.capabilities import ContinuousSpace, Dequantized, LatentVariable, ProbabilityFlow


def test_every_registered_model_has_a_tiny_case():
    assert set(registered()) == set(CASES), set(registered()) ^ set(CASES)


@pytest.mark.parametrize("name", registered())
def test_contract(name):
    model, params, x = build(name)
    key = jax.random.key(1)
    assert isinstance(model.kind, Kind) and all(isinstance(e.kind, Kind) for e in model.estimators.values())
    with jax.numpy_dtype_promotion("strict"):
        loss, metrics = jax.jit(model.loss)(params, jnp.asarray(x[:16]), key)
        assert loss.shape == () and np.isfinite(float(loss)), (name, loss)
        assert all(np.shape(v) == () for v in metrics.values())
        samples = jax.jit(model.sample, static_argnums=2)(params, key, 5)
    assert samples.shape == (5, *model.event_shape) and np.all(np.isfinite(np.asarray(samples, np.float64)))
    if x.dtype == np.uint8:
        assert samples.dtype == jnp.uint8  # 8-bit data: 8-bit samples
    if model.kind == Kind.NONE:
        with pytest.raises(NotImplementedError, match="no log_prob"):
            model.log_prob(params, jnp.asarray(x[:4]), key)
        return
    xb = jnp.asarray(x[:8])
    for view_name, view in model.views():
        with jax.numpy_dtype_promotion("strict"):
            lp = jax.jit(view.log_prob)(params, xb, key)
        assert lp.shape == (8,) and np.all(np.isfinite(np.asarray(lp))), (view_name, lp)
        # vmapped over batches of 4 with the same key per batch: the same numbers as batch by batch
        pair = jnp.stack([xb[:4], xb[4:]])
        by_vmap = jax.vmap(lambda b: view.log_prob(params, b, key))(pair)
        by_loop = jnp.stack([view.log_prob(params, b, key) for b in pair])
        np.testing.assert_allclose(by_vmap, by_loop, rtol=2e-4, atol=2e-4, err_msg=view_name)


@pytest.mark.parametrize("name", [n for n in registered() if n not in ("gan",)])
def test_capability_invariants(name):
    """ContinuousSpace: log_prob(x) = log_density(y) + log_det; Dequantized: log_prob changes with the
    key alone through the dequantization; LatentVariable: logmeanexp of k = 1 weight is the ELBO's
    estimator; ProbabilityFlow: its default config gives the ODE estimator's numbers."""
    model, params, x = build(name)
    key = jax.random.key(3)
    xb = jnp.asarray(x[:6])
    space = model.get(ContinuousSpace)
    if space is not None:
        y, log_det = space.to_continuous(params, xb, key)
        direct = jax.vmap(lambda yi: space.log_density(params, yi))(y) + log_det
        np.testing.assert_allclose(model.log_prob(params, xb, key), direct, rtol=1e-5, atol=1e-4)
    if model.get(Dequantized) is not None:
        a, b = model.log_prob(params, xb, key), model.log_prob(params, xb, jax.random.key(4))
        assert not np.allclose(a, b)  # a different draw, a different number
        np.testing.assert_allclose(model.log_prob(params, xb, key), a)  # the same draw, the same number
    latent = model.get(LatentVariable)
    if latent is not None:
        lw = latent.log_weights(params, xb, key, 3)
        assert lw.shape == (6, 3) and np.all(np.isfinite(np.asarray(lw)))
    flow = model.get(ProbabilityFlow)
    if flow is not None and "ode" in model.estimators:
        lp, nfe = flow.log_prob_and_nfe(params, xb, key, flow.config)
        np.testing.assert_allclose(lp, model.estimators["ode"].log_prob(params, xb, key), rtol=1e-5)
        assert np.all(np.asarray(nfe) > 0)


@pytest.mark.parametrize("name", ["realnvp", "nsf", "maf", "gaussian", "gmm", "ebm_dsm"])
def test_float64_matches_float32(name):
    """The same parameters in float64 give the same log-densities (within float32's error)."""
    model, params, x = build(name)
    lp32 = np.asarray(model.log_prob(params, jnp.asarray(x[:8])), np.float64)
    with jax.enable_x64(True):
        p64 = jax.tree_util.tree_map(lambda p: jnp.asarray(p, jnp.float64), params)
        lp64 = np.asarray(model.log_prob(p64, jnp.asarray(x[:8], jnp.float64)))
    assert lp64.dtype == np.float64
    np.testing.assert_allclose(lp32, lp64, rtol=1e-4, atol=1e-3)
