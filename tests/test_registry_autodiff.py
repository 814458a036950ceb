"""Autodiff in every mode for every registered model: jax.grad, jax.jvp, jax.jacfwd and jax.hessian of
log_prob with respect to the data (real-valued models) and to the parameters, and the modes agree
(forward-mode derivatives equal reverse-mode ones; the Hessian is the Jacobian of the gradient).

With respect to the parameters, the forward-mode derivatives and the Hessian are taken along a few
random directions of the whole parameter pytree (f(t) = log p(params + sum_i t_i v_i)): every
parameter and every primitive is differentiated, at the cost of a 3-dimensional Hessian."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_models import CASES, build, registered

from gen_jax.core import Kind

DENSITY_MODELS = [n for n in registered() if n != "gan"]
REAL_DATA = [n for n in DENSITY_MODELS if CASES[n][2] == "real"]


def _directions(params, k: int = 3):
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(7), k * len(leaves)).reshape(k, len(leaves))
    floating = lambda leaf: jnp.issubdtype(leaf.dtype, jnp.floating)
    return [
        jax.tree_util.tree_unflatten(
            tree,
            [
                jax.random.normal(kk, leaf.shape, leaf.dtype) if floating(leaf) else jnp.zeros_like(leaf)
                for kk, leaf in zip(keys[i], leaves, strict=True)
            ],
        )
        for i in range(k)
    ]


@pytest.mark.parametrize("name", DENSITY_MODELS)
def test_every_mode_with_respect_to_parameters(name):
    model, params, x = build(name)
    assert model.kind != Kind.NONE
    xb, key = jnp.asarray(x[:4]), jax.random.key(2)
    f = lambda p: jnp.sum(model.log_prob(p, xb, key))
    vs = _directions(params)
    along = lambda t: f(
        jax.tree_util.tree_map(
            lambda p, *d: (
                p + sum(ti * di for ti, di in zip(t, d, strict=True))
                if jnp.issubdtype(p.dtype, jnp.floating)
                else p
            ),
            params,
            *vs,
        )
    )

    @jax.jit  # one program: compiling it is far cheaper than dispatching the image models' ops eagerly
    def modes():
        t0 = jnp.zeros(3)
        grad = jax.grad(f)(params)
        reverse = jnp.stack(
            [
                sum(
                    jnp.vdot(g, v)
                    for g, v in zip(
                        jax.tree_util.tree_leaves(grad), jax.tree_util.tree_leaves(vi), strict=True
                    )
                )
                for vi in vs
            ]
        )
        _, tangent = jax.jvp(f, (params,), (vs[0],))
        return jax.jacfwd(along)(t0), reverse, tangent, jax.hessian(along)(t0)

    forward, reverse, tangent, hess = modes()
    scale = 1.0 + float(jnp.max(jnp.abs(reverse)))
    np.testing.assert_allclose(forward, reverse, rtol=1e-3, atol=1e-3 * scale)
    np.testing.assert_allclose(tangent, reverse[0], rtol=1e-3, atol=1e-3 * scale)
    assert hess.shape == (3, 3) and np.all(np.isfinite(np.asarray(hess)))
    np.testing.assert_allclose(hess, hess.T, rtol=1e-3, atol=1e-3 * (1.0 + float(jnp.max(jnp.abs(hess)))))


@pytest.mark.parametrize("name", REAL_DATA)
def test_every_mode_with_respect_to_the_data(name):
    """The score of one point by grad and jacfwd, its Hessian, and a jvp: all agree."""
    model, params, x = build(name)
    key = jax.random.key(2)
    f = lambda v: model.log_prob(params, v[None], key)[0]
    v = jnp.asarray(x[0])

    @jax.jit
    def modes(v):
        _, tangent = jax.jvp(f, (v,), (jnp.ones_like(v),))
        return jax.grad(f)(v), jax.jacfwd(f)(v), tangent, jax.hessian(f)(v), jax.jacfwd(jax.grad(f))(v)

    grad, forward, tangent, hess, fwd_of_rev = modes(v)
    np.testing.assert_allclose(forward, grad, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(tangent, jnp.sum(grad), rtol=1e-3, atol=1e-3)
    assert hess.shape == (v.size, v.size)
    np.testing.assert_allclose(hess, fwd_of_rev, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(hess, hess.T, rtol=1e-3, atol=1e-3 * (1.0 + float(jnp.max(jnp.abs(hess)))))
