"""Multi-layer perceptron, the conditioner and energy network of the vector models."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


class MLP(nn.Module):
    """Dense layers with an activation between them.

    `zero_init_last` starts the output at exactly zero: a flow whose conditioners start at
    zero starts as the identity map. `dtype` is the compute dtype (e.g. bfloat16 for mixed
    precision); parameters stay float32 and the output is returned in float32.
    """

    hidden: Sequence[int]
    out: int
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    zero_init_last: bool = False
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for width in self.hidden:
            x = self.activation(nn.Dense(width, dtype=self.dtype)(x))
        init = nn.initializers.zeros if self.zero_init_last else nn.initializers.lecun_normal()
        out = nn.Dense(self.out, kernel_init=init, bias_init=nn.initializers.zeros, dtype=self.dtype)(x)
        return out.astype(jnp.float32) if self.dtype is not None else out


def swish(x: jax.Array) -> jax.Array:
    return x * jax.nn.sigmoid(x)


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "gelu": nn.gelu,
    "silu": swish,
    "tanh": jnp.tanh,
    "softplus": nn.softplus,
    "elu": nn.elu,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None


def compute_dtype(name: str | None) -> Any:
    """The compute dtype of a network from its config name: None / "float32" or "bfloat16"."""
    if name in (None, "float32"):
        return None
    if name == "bfloat16":
        return jnp.bfloat16
    raise ValueError(f"unknown compute dtype {name!r}; choose 'float32' or 'bfloat16'")
