"""Normalizing flows built from distrax bijectors, with Flax conditioners.

A flow is `distrax.Transformed(standard normal, bijector(params))`. The bijector is
assembled from the parameters on every call, which costs nothing under jit and keeps the
model a pure function of `params`:

- RealNVP (Dinh et al. 2017): affine coupling layers, alternating which half is transformed.
- NSF (Durkan et al. 2019): rational-quadratic spline coupling layers (identity outside
  [-tail_bound, tail_bound]).
- MAF (Papamakarios et al. 2017): masked autoregressive affine layers with MADE conditioners,
  alternating the autoregressive order; density in one pass, sampling in D passes.

`log_prob` is exact (`Kind.EXACT`): the change-of-variables formula.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import distrax
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.models.base import Model, distribution_model
from gen_jax.models.bijectors import RationalQuadraticSpline
from gen_jax.nn.made import MADE
from gen_jax.nn.mlp import MLP
from gen_jax.nn.mlp import activation as activation_fn

MAX_LOG_SCALE = 5.0


def soft_clamp(log_scale: jax.Array, bound: float = MAX_LOG_SCALE) -> jax.Array:
    """Smoothly keep a log-scale within (-bound, bound); the identity near 0."""
    return bound * jnp.tanh(log_scale / bound)


def affine_transformer(params: jax.Array) -> distrax.Bijector:
    """Elementwise affine map from conditioner output (..., 2): shift and log-scale."""
    return distrax.ScalarAffine(shift=params[..., 0], log_scale=soft_clamp(params[..., 1]))


def spline_transformer(tail_bound: float) -> Callable[[jax.Array], distrax.Bijector]:
    """Elementwise rational-quadratic spline from conditioner output (..., 3K - 1).

    K widths, K heights and the K - 1 interior knot slopes; the boundary slopes are 1 and
    the spline is the identity outside [-tail_bound, tail_bound] (see `bijectors`).
    """
    return lambda params: RationalQuadraticSpline(params, tail_bound)


def standard_normal(event_dim: int) -> distrax.Distribution:
    return distrax.MultivariateNormalDiag(jnp.zeros(event_dim), jnp.ones(event_dim))


def flow_model(
    name: str,
    event_dim: int,
    init: Callable,
    bijector: Callable[[dict], distrax.Bijector],
    info: dict,
) -> Model:
    """A Model from a parameterised bijector pushed through a standard normal base."""

    def distribution(params) -> distrax.Distribution:
        return distrax.Transformed(standard_normal(event_dim), bijector(params))

    return distribution_model(name, (event_dim,), init, distribution, info, parts={"bijector": bijector})


def _check_dim(event_dim: int, need: int, family: str) -> None:
    if event_dim < need:
        raise ValueError(
            f"{family} needs data of dimension >= {need}, got {event_dim}; use `maf` for 1-D data"
        )


def coupling_flow(
    event_dim: int,
    num_layers: int,
    hidden: Sequence[int],
    transformer: str,
    num_bins: int = 8,
    tail_bound: float = 4.0,
    activation: str = "relu",
    name: str | None = None,
) -> Model:
    """Coupling flow: layer i keeps one half of x fixed and transforms the other half
    elementwise with parameters computed from the fixed half; halves alternate."""
    _check_dim(event_dim, 2, "a coupling flow")
    split = event_dim // 2
    if transformer == "affine":
        per_dim, make_transformer = 2, affine_transformer
    elif transformer == "spline":
        per_dim, make_transformer = 3 * num_bins - 1, spline_transformer(tail_bound)
    else:
        raise ValueError(f"unknown coupling transformer {transformer!r}; choose 'affine' or 'spline'")

    def sizes(i: int) -> tuple[int, int]:  # (conditioning dims, transformed dims) of layer i
        swap = i % 2 == 1
        return (event_dim - split, split) if swap else (split, event_dim - split)

    act = activation_fn(activation)
    nets = [MLP(tuple(hidden), sizes(i)[1] * per_dim, act, zero_init_last=True) for i in range(num_layers)]

    def init(key, x):
        keys = jax.random.split(key, num_layers)
        return {
            "layers": [
                net.init(k, jnp.zeros((1, sizes(i)[0])))["params"]
                for i, (net, k) in enumerate(zip(nets, keys, strict=True))
            ]
        }

    def layer(i: int, p) -> distrax.Bijector:
        net, d2 = nets[i], sizes(i)[1]

        def conditioner(x1):
            out = net.apply({"params": p}, x1)
            return out.reshape(*x1.shape[:-1], d2, per_dim)

        return distrax.SplitCoupling(
            split_index=split,
            event_ndims=1,
            conditioner=conditioner,
            bijector=make_transformer,
            swap=i % 2 == 1,
        )

    def bijector(params):
        # distrax.Chain applies its last element first: layer 0 acts first on the base sample.
        return distrax.Chain([layer(i, p) for i, p in enumerate(params["layers"])][::-1])

    info = dict(
        family="flow",
        architecture=f"{transformer} coupling x{num_layers}, MLP {list(hidden)} {activation}",
        num_bins=num_bins if transformer == "spline" else None,
        tail_bound=tail_bound if transformer == "spline" else None,
    )
    default = "realnvp" if transformer == "affine" else "nsf"
    return flow_model(name or default, event_dim, init, bijector, info)


def realnvp(
    event_dim: int,
    num_layers: int = 8,
    hidden: Sequence[int] = (64, 64),
    activation: str = "relu",
    name="realnvp",
) -> Model:
    """RealNVP: affine coupling layers."""
    return coupling_flow(event_dim, num_layers, hidden, "affine", activation=activation, name=name)


def nsf(
    event_dim: int,
    num_layers: int = 4,
    hidden: Sequence[int] = (64, 64),
    num_bins: int = 8,
    tail_bound: float = 4.0,
    activation: str = "relu",
    name: str = "nsf",
) -> Model:
    """Neural spline flow: rational-quadratic spline coupling layers."""
    return coupling_flow(event_dim, num_layers, hidden, "spline", num_bins, tail_bound, activation, name=name)


class MaskedAutoregressiveAffine(distrax.Bijector):
    """x_d = z_d * exp(s_d(x_<d)) + m_d(x_<d), with (m, s) from a MADE conditioner.

    The density direction (x -> z) is one conditioner pass; the sampling direction needs
    D passes, each fixing one more coordinate (run as a `lax.fori_loop`).
    """

    def __init__(self, conditioner: Callable[[jax.Array], jax.Array], event_dim: int):
        super().__init__(event_ndims_in=1)
        self._conditioner = conditioner
        self._event_dim = event_dim

    def _shift_log_scale(self, x):
        p = self._conditioner(x)
        return p[..., 0], soft_clamp(p[..., 1])

    def forward_and_log_det(self, z):
        def one_pass(_, x):
            shift, log_scale = self._shift_log_scale(x)
            return z * jnp.exp(log_scale) + shift

        x = jax.lax.fori_loop(0, self._event_dim, one_pass, jnp.zeros_like(z))
        _, log_scale = self._shift_log_scale(x)
        return x, jnp.sum(log_scale, axis=-1)

    def inverse_and_log_det(self, x):
        shift, log_scale = self._shift_log_scale(x)
        return (x - shift) * jnp.exp(-log_scale), -jnp.sum(log_scale, axis=-1)


def maf(
    event_dim: int,
    num_layers: int = 5,
    hidden: Sequence[int] = (64, 64),
    activation: str = "relu",
    name="maf",
):
    """Masked autoregressive flow; the autoregressive order reverses from layer to layer."""
    orders = [np.arange(event_dim) if i % 2 == 0 else np.arange(event_dim)[::-1] for i in range(num_layers)]
    nets = [
        MADE(tuple(int(o) for o in order), tuple(hidden), 2, activation_fn(activation)) for order in orders
    ]

    def init(key, x):
        keys = jax.random.split(key, num_layers)
        return {
            "layers": [
                net.init(k, jnp.zeros((1, event_dim)))["params"] for net, k in zip(nets, keys, strict=True)
            ]
        }

    def bijector(params):
        layers = [
            MaskedAutoregressiveAffine(lambda x, net=net, p=p: net.apply({"params": p}, x), event_dim)
            for net, p in zip(nets, params["layers"], strict=True)
        ]
        return distrax.Chain(layers[::-1])

    info = dict(family="flow", architecture=f"MAF x{num_layers}, MADE {list(hidden)} {activation}")
    return flow_model(name, event_dim, init, bijector, info)
