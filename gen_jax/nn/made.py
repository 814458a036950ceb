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


def made_degrees(order: Sequence[int], hidden: Sequence[int], context_dim: int = 0) -> list[np.ndarray]:
    """Degrees of the input and hidden units.

    `order[d]` is the position of input d in the autoregressive ordering (0 = first).
    Hidden degrees cycle through 0..D-2 so that every unit can reach an output. With a context
    (`context_dim` extra inputs, degree -1: every unit may see them) they cycle through -1..D-2, so
    that even the first output depends on the context.
    """
    d = len(order)
    degrees = [np.concatenate([np.asarray(order, np.int32), np.full(context_dim, -1, np.int32)])]
    for width in hidden:
        if context_dim:
            degrees.append(np.arange(width, dtype=np.int32) % d - 1)
        else:
            degrees.append(np.arange(width, dtype=np.int32) % max(d - 1, 1))
    return degrees


def made_masks(
    order: Sequence[int], hidden: Sequence[int], params_per_dim: int, context_dim: int = 0
) -> list[np.ndarray]:
    """Connectivity masks (in_features, out_features) for every layer, output last.

    The output has D * params_per_dim units laid out as (D, params_per_dim): unit (d, k)
    sees only inputs j with order[j] < order[d] (and every context input).
    """
    deg = made_degrees(order, hidden, context_dim)
    masks = [(deg[i][:, None] <= deg[i + 1][None, :]) for i in range(len(hidden))]
    out_deg = np.repeat(np.asarray(order, np.int32), params_per_dim)
    masks.append(deg[-1][:, None] < out_deg[None, :])
    return [m.astype(np.float32) for m in masks]


class MaskedDense(nn.Module):
    """A dense layer whose kernel is multiplied by a fixed 0/1 connectivity mask."""

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
    """Autoregressive network: x of shape (..., D) -> parameters of shape (..., D, params_per_dim);
    with `context_dim`, also of a context (..., context_dim) that every output may depend on."""

    order: Sequence[int]
    hidden: Sequence[int]
    params_per_dim: int
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    zero_init_last: bool = True
    dtype: Any = None  # compute dtype (e.g. bfloat16); the output is then float32
    context_dim: int = 0

    @nn.compact
    def __call__(self, x: jax.Array, context: jax.Array | None = None) -> jax.Array:
        masks = made_masks(self.order, self.hidden, self.params_per_dim, self.context_dim)
        h = x if not self.context_dim else jnp.concatenate([x, jnp.asarray(context, x.dtype)], axis=-1)
        for width, mask in zip(self.hidden, masks[:-1], strict=True):
            h = self.activation(MaskedDense(width, mask, dtype=self.dtype)(h))
        out = MaskedDense(len(self.order) * self.params_per_dim, masks[-1], self.zero_init_last, self.dtype)(
            h
        )
        if self.dtype is not None:
            out = out.astype(jnp.float32)
        return out.reshape(*x.shape[:-1], len(self.order), self.params_per_dim)
