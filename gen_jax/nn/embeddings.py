"""Embeddings of a scalar (diffusion time or noise level) for conditioning networks.

`sinusoidal_embedding`: the fixed sin/cos features of "Attention is all you need", as used for
diffusion time by DDPM and VDM (`get_timestep_embedding`), for any leading shape.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def sinusoidal_embedding(t: jax.Array, dim: int, scale: float = 1000.0, max_period: float = 10_000.0):
    """sin/cos features of `scale * t` at `dim // 2` geometric frequencies: shape (*t.shape, dim).

    `t` is expected in about [0, 1]; `scale` spreads it over the periods 1 .. `max_period`.
    """
    if dim < 2 or dim % 2:
        raise ValueError(f"embedding dim must be an even number >= 2, got {dim}")
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / max(half - 1, 1))
    t = jnp.asarray(t, jnp.float32)
    angles = scale * t[..., None] * freqs.reshape((1,) * t.ndim + (half,))
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)
