"""The feature-major MLP of the flows' conditioners: the same function and gradients as the
batch-major `MLP` with the same parameters, its dense layer's own VJP against autodiff, and the
products it compiles to are all plain GEMMs (no batch contraction on a leading axis)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.nn.mlp import MLP, FeatureMajorMLP, fan_in_uniform, linear_fm


@pytest.mark.parametrize("uniform_bias", [False, True])
def test_feature_major_mlp_is_the_batch_major_mlp(uniform_bias):
    kw = dict(hidden=(16, 8), out=5, activation=jax.nn.silu, uniform_bias=uniform_bias)
    fm, bm = FeatureMajorMLP(**kw), MLP(**kw)
    x = jax.random.normal(jax.random.key(0), (12, 3))
    params = fm.init(jax.random.key(1), x.T)
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(bm.init(jax.random.key(1), x))
    np.testing.assert_allclose(fm.apply(params, x.T).T, bm.apply(params, x), rtol=1e-5, atol=1e-6)

    def loss(apply, p, x):
        return jnp.sum(jnp.sin(apply(p, x)))

    g_fm = jax.grad(lambda p, x: loss(fm.apply, p, x.T), argnums=(0, 1))(params, x)
    g_bm = jax.grad(lambda p, x: loss(bm.apply, p, x), argnums=(0, 1))(params, x)
    for a, b in zip(jax.tree_util.tree_leaves(g_fm), jax.tree_util.tree_leaves(g_bm), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_linear_fm_vjp_and_second_order():
    w = jax.random.normal(jax.random.key(2), (4, 3))
    x = jax.random.normal(jax.random.key(3), (4, 7))

    def f(w, x):  # a nonlinear readout so the second derivative is not trivial
        return jnp.sum(jnp.tanh(linear_fm(w, x)) ** 2)

    def ref(w, x):
        return jnp.sum(jnp.tanh(w.T @ x) ** 2)

    for a, b in zip(jax.grad(f, (0, 1))(w, x), jax.grad(ref, (0, 1))(w, x), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    hess = jax.jacrev(jax.grad(f))(w, x)  # reverse over reverse
    np.testing.assert_allclose(hess, jax.jacrev(jax.grad(ref))(w, x), rtol=1e-4, atol=1e-5)
    hess = jax.hessian(f)(w, x)  # forward over reverse (its own JVP rule)
    np.testing.assert_allclose(hess[0][0], jax.hessian(ref)(w, x)[0][0], rtol=1e-4, atol=1e-5)
    _, tangent = jax.jvp(lambda w: f(w, x), (w,), (w,))
    np.testing.assert_allclose(tangent, jax.jvp(lambda w: ref(w, x), (w,), (w,))[1], rtol=1e-5)


def test_feature_major_products_are_plain_gemms():
    """Every dot of a forward+backward pass contracts the operands' stored layout as a GEMM does:
    no contraction over the first axis of both operands (the slow form on XLA:CPU)."""
    net = FeatureMajorMLP((64, 64), 2)
    x_t = jnp.ones((1, 512))
    params = net.init(jax.random.key(0), x_t)
    grad = jax.jit(jax.grad(lambda p: jnp.sum(net.apply(p, x_t) ** 2)))
    hlo = grad.lower(params).compile().as_text()
    dots = [line for line in hlo.splitlines() if " dot(" in line]
    assert dots
    assert not [d for d in dots if "lhs_contracting_dims={0}" in d and "rhs_contracting_dims={0}" in d]


def test_fan_in_uniform_bias():
    b = fan_in_uniform(4)(jax.random.key(0), (10_000,))
    assert (
        float(b.min()) >= -0.5
        and float(b.max()) <= 0.5
        and float(b.std()) == pytest.approx(0.5 / 3**0.5, rel=0.05)
    )
    with pytest.raises(ValueError, match="features, batch"):
        FeatureMajorMLP((4,), 2).init(jax.random.key(0), jnp.ones((3, 2, 2)))
