"""Multi-layer perceptron, the conditioner and energy network of the vector models.

Two layouts of the same network (same parameters, same function):
- `MLP`: activations (batch, features), as `flax.linen.Dense` computes them.
- `FeatureMajorMLP`: activations (features, batch) inside, for the flows' conditioners. On XLA:CPU
  the weight gradient of a (batch, features) layer, x^T g, contracts the batch over the first axis
  of both operands; no fast GEMM path takes that form (the fallback runs at about half speed), and
  it is most of a small MLP's backward pass. With the batch on the last axis every product of the
  forward and backward pass is a plain GEMM (`linear_fm`, with its own JVP rule, whose transpose is
  the backward pass); `make bench-families` measures what it buys.
"""

from __future__ import annotations

import math
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
    uniform_bias: bool = False  # hidden biases U(+-1/sqrt(fan_in)) (`fan_in_uniform`), else zeros

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for width in self.hidden:
            bias = fan_in_uniform(x.shape[-1]) if self.uniform_bias else nn.initializers.zeros
            x = self.activation(nn.Dense(width, bias_init=bias, dtype=self.dtype)(x))
        init = nn.initializers.zeros if self.zero_init_last else nn.initializers.lecun_normal()
        out = nn.Dense(self.out, kernel_init=init, bias_init=nn.initializers.zeros, dtype=self.dtype)(x)
        return out.astype(jnp.float32) if self.dtype is not None else out


def fan_in_uniform(fan_in: int) -> Callable:
    """Bias initializer U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's and Equinox's default.

    Zero biases (Flax's default) put every first-layer ReLU kink of a network with 1-D input at 0:
    a 2-D coupling flow's conditioner then starts as a function of |x1| and the sign of x1 alone.
    Spread kinks trained the flow benchmark's RealNVP to a better test NLL on both of its datasets."""
    scale = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -scale, scale)

    return init


@jax.custom_jvp
def linear_fm(kernel: jax.Array, x_t: jax.Array) -> jax.Array:
    """kernel^T x_t: a dense layer on feature-major activations, (in, N) -> (out, N), kernel (in, out).

    Forward: a GEMM with a physically transposed kernel (small: in x out); the optimization barrier
    keeps XLA from folding the transpose back into a transposed-operand product. Its own JVP rule
    (d kernel^T x_t + kernel^T d x_t, the second term through linear_fm again) gives every mode of
    autodiff: forward (jax.jvp, jax.jacfwd), reverse by transposing it (d x_t = kernel g_t and
    d kernel = x_t g_t^T, plain GEMMs on the stored layouts), and any order (jax.hessian).
    """
    return _transposed_gemm(kernel, x_t)


def _transposed_gemm(kernel, x_t):
    return jax.lax.optimization_barrier(kernel.T) @ x_t


@linear_fm.defjvp
def _linear_fm_jvp(primals, tangents):
    kernel, x_t = primals
    d_kernel, d_x = tangents
    # both tangent products contract the stored layouts' first axes, so that their transposes (the
    # reverse mode) are the plain GEMMs d kernel = x_t g_t^T and d x_t = kernel g_t
    contract = (((0,), (0,)), ((), ()))
    d_y = jax.lax.dot_general(d_kernel, x_t, contract) + jax.lax.dot_general(kernel, d_x, contract)
    return linear_fm(kernel, x_t), d_y


class DenseFM(nn.Module):
    """`flax.linen.Dense` on feature-major activations (in, N) -> (out, N): the same parameters
    (kernel (in, out), bias (out,)) and initialisers, so the two layouts are interchangeable."""

    features: int
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros
    dtype: Any = None

    @nn.compact
    def __call__(self, x_t: jax.Array) -> jax.Array:
        kernel = self.param("kernel", self.kernel_init, (x_t.shape[0], self.features), jnp.float32)
        bias = self.param("bias", self.bias_init, (self.features,), jnp.float32)
        dtype = self.dtype or x_t.dtype
        y = linear_fm(kernel.astype(dtype), x_t.astype(dtype))
        return y + bias.astype(dtype)[:, None]


class FeatureMajorMLP(nn.Module):
    """`MLP` with activations stored (features, N): takes x_t (in, N) and returns (out, N).

    Parameters are named and shaped as `MLP`'s (Dense_0, Dense_1, ...: kernel (in, out), bias), so
    `MLP(...).apply(params, x) == FeatureMajorMLP(...).apply(params, x.T).T`.
    """

    hidden: Sequence[int]
    out: int
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    zero_init_last: bool = False
    dtype: Any = None
    uniform_bias: bool = False  # hidden biases U(+-1/sqrt(fan_in)) (`fan_in_uniform`), else zeros

    @nn.compact
    def __call__(self, x_t: jax.Array) -> jax.Array:
        if x_t.ndim != 2:
            raise ValueError(f"FeatureMajorMLP takes (features, batch) activations, got shape {x_t.shape}")
        for i, width in enumerate(self.hidden):
            bias = fan_in_uniform(x_t.shape[0]) if self.uniform_bias else nn.initializers.zeros
            x_t = self.activation(DenseFM(width, bias_init=bias, dtype=self.dtype, name=f"Dense_{i}")(x_t))
        init = nn.initializers.zeros if self.zero_init_last else nn.initializers.lecun_normal()
        out = DenseFM(self.out, kernel_init=init, dtype=self.dtype, name=f"Dense_{len(self.hidden)}")(x_t)
        return out.astype(jnp.float32) if self.dtype is not None else out


def swish(x: jax.Array) -> jax.Array:
    """x * sigmoid(x) (SiLU)."""
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
    """The activation function by name (one of ACTIVATIONS)."""
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


def mixed_precision(apply_fn: Callable, dtype) -> Callable:
    """`apply_fn(variables, *args, **kwargs)` computing in `dtype` (from `compute_dtype`): floating
    parameters and inputs are cast to it on the way in and floating outputs back to float32 on the way
    out, so the parameters (and their gradients, through the cast) and every likelihood term computed
    from the outputs stay float32. dtype None: `apply_fn` unchanged."""
    if dtype is None:
        return apply_fn

    def cast(tree, to):
        floating = lambda a: hasattr(a, "dtype") and jnp.issubdtype(a.dtype, jnp.floating)
        return jax.tree_util.tree_map(lambda a: a.astype(to) if floating(a) else a, tree)

    def run(variables, *args, **kwargs):
        return cast(apply_fn(cast(variables, dtype), *cast(args, dtype), **kwargs), jnp.float32)

    return run
