"""The im2col convolution equals XLA's convolution for every stride, padding and mask it accepts."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.nn.conv import Conv, conv2d


@pytest.mark.parametrize(
    "kernel, strides, padding, hw",
    [
        ((3, 3), (1, 1), "SAME", (7, 6)),
        ((3, 3), (2, 2), "SAME", (8, 8)),
        ((3, 3), (2, 2), "SAME", (7, 7)),  # odd size: lax pads (0, 1) / (1, 1) by its rule
        ((4, 4), (2, 2), "SAME", (8, 6)),
        ((3, 1), (2, 1), "VALID", (9, 5)),
        ((2, 3), (1, 2), ((1, 0), (2, 1)), (6, 7)),
    ],
)
def test_im2col_conv_equals_lax_conv(kernel, strides, padding, hw):
    kx, kk = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (2, *hw, 3))
    w = jax.random.normal(kk, (*kernel, 3, 5))
    ref = conv2d(x, w, padding, impl="lax", strides=strides)
    out = conv2d(x, w, padding, impl="im2col", strides=strides)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-4)
    # and its gradient (plain autodiff through the shifted views)
    g = lambda impl: jax.grad(
        lambda x, w: jnp.sum(jnp.sin(conv2d(x, w, padding, impl=impl, strides=strides))), (0, 1)
    )
    for a, b in zip(g("im2col")(x, w), g("lax")(x, w), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


def test_masked_conv_skips_masked_taps_and_matches_lax():
    x = jax.random.normal(jax.random.key(1), (1, 5, 5, 2))
    w = jax.random.normal(jax.random.key(2), (3, 3, 2, 4))
    mask = np.zeros((3, 3), np.float32)
    mask[0] = 1.0  # rows above only
    out = conv2d(x, w, "SAME", mask=mask, impl="im2col")
    ref = conv2d(x, w * mask[:, :, None, None], "SAME", impl="lax")
    np.testing.assert_allclose(out, ref, atol=1e-5)
    # output row 0 sees only padding above it: exactly zero
    np.testing.assert_array_equal(np.asarray(out[:, 0]), 0.0)


def test_conv_module_is_a_drop_in_for_flax_conv_with_strides():
    x = jax.random.normal(jax.random.key(3), (2, 28, 28, 1))
    ours = Conv(8, (3, 3), strides=(2, 2), impl="im2col")
    flax_conv = nn.Conv(8, (3, 3), strides=(2, 2), padding="SAME")
    params = flax_conv.init(jax.random.key(4), x)
    assert jax.tree_util.tree_structure(ours.init(jax.random.key(4), x)) == jax.tree_util.tree_structure(
        params
    )
    np.testing.assert_allclose(ours.apply(params, x), flax_conv.apply(params, x), atol=1e-4)
    assert ours.apply(params, x).shape == (2, 14, 14, 8)
