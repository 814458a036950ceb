"""A residual MLP conditioned on a scalar: the noise-prediction network of vector diffusion models."""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax

from gen_jax.nn.embeddings import sinusoidal_embedding
from gen_jax.nn.mlp import swish


class TimeMLP(nn.Module):
    """(x of shape (..., D), c of shape (...)) -> (..., out).

    `c` (diffusion time or normalized noise level, about [0, 1]) enters through a sinusoidal
    embedding and a learned projection added inside every residual block. The output layer
    starts at zero, so an untrained noise predictor predicts no noise.
    """

    out: int
    hidden: int = 128
    num_blocks: int = 3
    embed_dim: int = 64
    embed_scale: float = 1000.0  # c is multiplied by this before the sinusoids (see sinusoidal_embedding)
    activation: Callable[[jax.Array], jax.Array] = swish

    @nn.compact
    def __call__(self, x: jax.Array, c: jax.Array) -> jax.Array:
        act = self.activation
        emb = act(
            nn.Dense(self.hidden, name="embed")(sinusoidal_embedding(c, self.embed_dim, self.embed_scale))
        )
        h = nn.Dense(self.hidden, name="input")(x)
        h = h + nn.Dense(self.hidden, use_bias=False, name="embed_in")(emb)
        for i in range(self.num_blocks):
            r = nn.Dense(self.hidden, name=f"block{i}_a")(act(h))
            r = r + nn.Dense(self.hidden, use_bias=False, name=f"block{i}_embed")(emb)
            h = h + nn.Dense(self.hidden, name=f"block{i}_b")(act(r))
        return nn.Dense(self.out, kernel_init=nn.initializers.zeros, name="output")(act(h))
