"""Discretized logistic mixture over 8-bit values (Salimans et al. 2017, PixelCNN++), per pixel.

Pixel values x in {0, ..., 255} sit at centres c = 2 x / 255 - 1 in [-1, 1]; bin x covers
[c - 1/255, c + 1/255], with the two edge bins stretched to -inf and +inf so the 256 masses of
every component sum to exactly 1. The mass of a bin under a logistic with mean m and scale s is

    sigma(b) - sigma(a),   a = (c - 1/255 - m) / s,   b = (c + 1/255 - m) / s,

computed stably for any a < b as log_sigmoid(b) + log_sigmoid(-a) + log(-expm1(a - b)) (no
fallback to the density, no NaN in any branch). A K-component mixture per pixel takes 3K
numbers: logits, means and log-scales, stacked on the last axis.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array
NUM_VALUES = 256
HALF_BIN = 1.0 / (NUM_VALUES - 1)  # half the width of a bin on the [-1, 1] scale
MIN_LOG_SCALE = -7.0


def to_unit_scale(x: Array) -> Array:
    """Integer pixel values 0..255 -> bin centres 2 x / 255 - 1 in [-1, 1]."""
    return 2.0 * x.astype(jnp.float32) / (NUM_VALUES - 1) - 1.0


def split_params(params: Array) -> tuple[Array, Array, Array]:
    """(..., 3K) -> logits, means, log-scales, each (..., K); log-scales bounded below."""
    k = params.shape[-1] // 3
    if params.shape[-1] != 3 * k:
        raise ValueError(f"a logistic mixture takes 3K numbers per pixel, got {params.shape[-1]}")
    logits, means, log_scales = params[..., :k], params[..., k : 2 * k], params[..., 2 * k :]
    return logits, means, jnp.maximum(log_scales, MIN_LOG_SCALE)


def logistic_bin_log_mass(x: Array, mean: Array, log_scale: Array) -> Array:
    """log P(x) of integer pixel values under a discretized logistic (elementwise, same shapes)."""
    c = to_unit_scale(x)
    inv_s = jnp.exp(-log_scale)
    a = (c - HALF_BIN - mean) * inv_s
    b = (c + HALF_BIN - mean) * inv_s
    interior = jax.nn.log_sigmoid(b) + jax.nn.log_sigmoid(-a) + jnp.log(-jnp.expm1(a - b))
    xi = jnp.round(x.astype(jnp.float32))
    return jnp.where(
        xi <= 0, jax.nn.log_sigmoid(b), jnp.where(xi >= NUM_VALUES - 1, jax.nn.log_sigmoid(-a), interior)
    )


def mixture_log_prob(params: Array, x: Array) -> Array:
    """log P(x) per pixel under a discretized logistic mixture.

    params: (..., 3K) mixture parameters; x: (...) integer pixel values 0..255. Returns (...).
    """
    if params.shape[:-1] != x.shape:
        raise ValueError(f"mixture parameters {params.shape} do not match pixels {x.shape} (+ a 3K axis)")
    logits, means, log_scales = split_params(params)
    comp = logistic_bin_log_mass(x[..., None], means, log_scales)
    return jax.nn.logsumexp(jax.nn.log_softmax(logits, axis=-1) + comp, axis=-1)


def mixture_sample(params: Array, key: Array) -> Array:
    """Integer pixel values (uint8) drawn from the mixture, one per pixel of `params` (..., 3K)."""
    logits, means, log_scales = split_params(params)
    k_comp, k_u = jax.random.split(key)
    comp = jax.random.categorical(k_comp, logits, axis=-1)
    mean = jnp.take_along_axis(means, comp[..., None], axis=-1)[..., 0]
    log_scale = jnp.take_along_axis(log_scales, comp[..., None], axis=-1)[..., 0]
    u = jax.random.uniform(k_u, mean.shape, minval=1e-5, maxval=1.0 - 1e-5)
    y = mean + jnp.exp(log_scale) * (jnp.log(u) - jnp.log1p(-u))
    return jnp.clip(jnp.round((y + 1.0) * (NUM_VALUES - 1) / 2.0), 0, NUM_VALUES - 1).astype(jnp.uint8)


def mixture_mean(params: Array) -> Array:
    """The mean pixel value (float, 0..255 scale, ignoring the edge clipping): for figures."""
    logits, means, _ = split_params(params)
    m = jnp.sum(jax.nn.softmax(logits, axis=-1) * means, axis=-1)
    return jnp.clip((m + 1.0) * (NUM_VALUES - 1) / 2.0, 0, NUM_VALUES - 1)
