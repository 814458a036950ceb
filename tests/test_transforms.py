"""Dequantization and logit accounting against hand computation."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.core.units import nats_to_bits_per_dim
from gen_jax.data.transforms import (
    LogitTransform,
    binarize,
    center,
    dequantize,
    discrete_log_prob_from_continuous,
    fixed_binarization,
)


def test_uniform_density_is_8_bits_per_dim():
    # the uniform density on [0, 1)^D is q = 1: every 8-bit image then costs exactly 8 bits/dim
    d = 784
    lp = discrete_log_prob_from_continuous(jnp.zeros(()), d)
    assert float(nats_to_bits_per_dim(-lp, d)) == np.float32(8.0)


def test_dequantize_stays_in_the_pixel_cube():
    x = jnp.arange(256, dtype=jnp.uint8).reshape(16, 16)
    y = dequantize(x, jax.random.key(0))
    assert y.dtype == jnp.float32
    assert bool(jnp.all(jnp.floor(y * 256) == x.astype(jnp.float32)))
    np.testing.assert_allclose(center(x) * 256 - 0.5, x.astype(np.float32))


def test_logit_transform_logdet_by_hand_and_autodiff():
    alpha = 0.05
    bij = LogitTransform(alpha)
    y = jnp.array([0.0, 0.1, 0.5, 0.97])
    z, ld = bij.forward_and_log_det(y)
    s = alpha + (1 - 2 * alpha) * np.asarray(y, np.float64)
    np.testing.assert_allclose(z, np.log(s / (1 - s)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ld, np.log(1 - 2 * alpha) - np.log(s) - np.log(1 - s), rtol=1e-5)
    np.testing.assert_allclose(ld, np.log(jax.vmap(jax.grad(lambda v: bij.forward(v)))(y)), rtol=1e-5)
    y_back, ild = bij.inverse_and_log_det(z)
    np.testing.assert_allclose(y_back, y, atol=1e-6)
    np.testing.assert_allclose(ild, -ld, rtol=1e-5)


def test_standard_logistic_on_logit_scale_is_uniform():
    # z ~ logistic(0, 1) is exactly uniform y with alpha = 0: log q(y) = log p(z) + log|dz/dy| = 0
    bij = LogitTransform(0.0)
    y = jax.random.uniform(jax.random.key(1), (100,), minval=0.01, maxval=0.99)
    z, ld = bij.forward_and_log_det(y)
    log_logistic = -z - 2 * jnp.log1p(jnp.exp(-z))
    np.testing.assert_allclose(log_logistic + ld, 0.0, atol=1e-5)
    assert math.isclose(float(nats_to_bits_per_dim(-(0.0 - 784 * math.log(256)), 784)), 8.0)


def test_binarization():
    x = jnp.array([[0, 255, 128]] * 4000, jnp.uint8)
    b = binarize(x, jax.random.key(0))
    assert set(np.unique(np.asarray(b))) <= {0.0, 1.0}
    np.testing.assert_allclose(np.asarray(b).mean(0), [0.0, 1.0, 128 / 255], atol=0.03)
    np.testing.assert_array_equal(fixed_binarization(x), fixed_binarization(x))
    assert not np.array_equal(np.asarray(binarize(x, jax.random.key(1))), np.asarray(b))
