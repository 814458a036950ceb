"""MADE: masked autoencoder for distribution estimation (Germain et al. 2015).

Output block d of the network depends only on inputs that come before d in `order`.
Used as the conditioner of masked autoregressive flows (MAF) and as an autoregressive
model in its own right.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def made_degrees(order: Sequence[int], hidden: Sequence[int]) -> list[np.ndarray]:
    """Degrees of the input and hidden units.

    `order[d]` is the position of input d in the autoregressive ordering (0 = first).
    Hidden degrees cycle through 0..D-2 so that every unit can reach an output.
    """
    d = len(order)
    degrees = [np.asarray(order, dtype=np.int32)]
    for width in hidden:
        degrees.append(np.arange(width, dtype=np.int32) % max(d - 1, 1))
    return degrees


def made_masks(order: Sequence[int], hidden: Sequence[int], params_per_dim: int) -> list[np.ndarray]:
    """Connectivity masks (in_features, out_features) for every layer, output last.

    The output has D * params_per_dim units laid out as (D, params_per_dim): unit (d, k)
    sees only inputs j with order[j] < order[d].
    """
    deg = made_degrees(order, hidden)
    masks = [(deg[i][:, None] <= deg[i + 1][None, :]) for i in range(len(hidden))]
    out_deg = np.repeat(deg[0], params_per_dim)
    masks.append(deg[-1][:, None] < out_deg[None, :])
    return [m.astype(np.float32) for m in masks]


class MaskedDense(nn.Module):
    features: int
    mask: np.ndarray
    zero_init: bool = False
    dtype: Any = None  # compute dtype (parameters stay float32)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        init = nn.initializers.zeros if self.zero_init else nn.initializers.lecun_normal()
        w = self.param("kernel", init, (x.shape[-1], self.features))
        b = self.param("bias", nn.initializers.zeros, (self.features,))
        w = w * jnp.asarray(self.mask)
        if self.dtype is not None:
            x, w, b = x.astype(self.dtype), w.astype(self.dtype), b.astype(self.dtype)
        return x @ w + b.reshape((1,) * (x.ndim - 1) + (-1,))


class MADE(nn.Module):
    """Autoregressive network: x of shape (..., D) -> parameters of shape (..., D, params_per_dim)."""

    order: Sequence[int]
    hidden: Sequence[int]
    params_per_dim: int
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    zero_init_last: bool = True
    dtype: Any = None  # compute dtype (e.g. bfloat16); the output is then float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        masks = made_masks(self.order, self.hidden, self.params_per_dim)
        h = x
        for width, mask in zip(self.hidden, masks[:-1], strict=True):
            h = self.activation(MaskedDense(width, mask, dtype=self.dtype)(h))
        out = MaskedDense(len(self.order) * self.params_per_dim, masks[-1], self.zero_init_last, self.dtype)(
            h
        )
        if self.dtype is not None:
            out = out.astype(jnp.float32)
        return out.reshape(*x.shape[:-1], len(self.order), self.params_per_dim)
