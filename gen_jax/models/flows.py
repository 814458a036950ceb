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

import math
from collections.abc import Callable, Sequence

import distrax
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.core import Model
from gen_jax.models.bijectors import RationalQuadraticSpline, ScanChain
from gen_jax.models.common import distribution_model
from gen_jax.nn.made import MADE
from gen_jax.nn.mlp import FeatureMajorMLP
from gen_jax.nn.mlp import activation as activation_fn
from gen_jax.nn.mlp import compute_dtype as dtype_of

MAX_LOG_SCALE = 5.0


def soft_clamp(log_scale: jax.Array, bound: float = MAX_LOG_SCALE) -> jax.Array:
    """Smoothly keep a log-scale within (-bound, bound); the identity near 0."""
    return bound * jnp.tanh(log_scale / bound)


def affine_transformer(params: jax.Array) -> distrax.Bijector:
    """Elementwise affine map from conditioner output (2, ...): shift and log-scale.

    Transformer parameters lead (parameter axis first): the layout the feature-major conditioners
    produce without a transpose."""
    return distrax.ScalarAffine(shift=params[0], log_scale=soft_clamp(params[1]))


def spline_transformer(tail_bound) -> Callable[[jax.Array], distrax.Bijector]:
    """Elementwise rational-quadratic spline from conditioner output (3K - 1, ...).

    K widths, K heights and the K - 1 interior knot slopes; the boundary slopes are 1 and
    the spline is the identity outside [-tail_bound, tail_bound] (see `bijectors`); tail_bound is a
    float or a scalar array (a box fitted to the data at init).

    The spline runs in the normalizing direction (data -> latent: `distrax.Inverse` of it is the
    flow's sampling direction), as nflows/normflows and flowjax (`invert=True`) run theirs:
    `log_prob` and training use its closed form, sampling solves its quadratic: on the flow
    benchmark this direction trained to a better test NLL and ran faster per step than the other.
    """
    return lambda params: distrax.Inverse(RationalQuadraticSpline(params, tail_bound, param_axis=0))


class StandardNormal(distrax.Distribution):
    """N(0, I) on vectors of `event_dim`, for any leading batch shape without broadcasting a
    location against the batch (distrax's MultivariateNormalDiag does, an implicit rank promotion
    when it is called on a whole batch)."""

    def __init__(self, event_dim: int):
        self._event_dim = int(event_dim)

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (self._event_dim,)

    def _sample_n(self, key, n: int) -> jax.Array:
        return jax.random.normal(key, (n, self._event_dim))

    def log_prob(self, value: jax.Array) -> jax.Array:
        return -0.5 * jnp.sum(value**2, axis=-1) - 0.5 * self._event_dim * math.log(2 * math.pi)


def standard_normal(event_dim: int) -> distrax.Distribution:
    """N(0, I) on vectors of `event_dim` (the flows' base)."""
    return StandardNormal(event_dim)


def flow_model(
    name: str,
    event_dim: int,
    init: Callable,
    bijector: Callable[..., distrax.Bijector],
    info: dict,
    context_dim: int | None = None,
) -> Model:
    """A Model from a parameterised bijector pushed through a standard normal base; with
    `context_dim`, bijector(params, context) of a batch of contexts: a conditional density."""

    def distribution(params, context=None) -> distrax.Distribution:
        return distrax.Transformed(standard_normal(event_dim), bijector(params, context))

    context_shape = (context_dim,) if context_dim else None
    return distribution_model(
        name,
        (event_dim,),
        init,
        distribution,
        info,
        internals={"bijector": bijector},
        batched=True,
        context_shape=context_shape,
    )


class Reverse(distrax.Bijector):
    """Reverses the order of the last axis: a volume-preserving permutation (log-det 0)."""

    def __init__(self):
        super().__init__(event_ndims_in=1)

    def forward_and_log_det(self, x):
        return x[..., ::-1], jnp.zeros(x.shape[:-1], x.dtype)

    def inverse_and_log_det(self, y):
        return y[..., ::-1], jnp.zeros(y.shape[:-1], y.dtype)


def mixing_permutations(event_dim: int, num_layers: int) -> np.ndarray | None:
    """The coupling flows' permutations between layers: None (a reversal) up to 2 dimensions, else one
    seeded random permutation per layer (the same for every model of this dimension)."""
    if event_dim <= 2:
        return None
    return np.stack([np.random.default_rng([event_dim, i]).permutation(event_dim) for i in range(num_layers)])


def interleaved_permutations(event_dim: int, num_layers: int) -> np.ndarray | None:
    """Permutations that make the coupling layers alternate between the odd and the even coordinates of
    the data's own order (RealNVP's checkerboard for sequences): the layer the data meet first keeps
    x_1, x_3, ... (0-based odd positions) and transforms the rest given them, the next keeps the even
    ones, and so on. Each transformed coordinate is conditioned on both its neighbours in the data's
    order: data whose dependence follows that order (a chain, a time series) are coupled locally. The
    price: two coordinates of the same parity never condition each other directly, only through the
    other parity, which depth makes enough (a 4-D Gaussian with only x_0 and x_2 correlated, 0.9:
    RealNVP with 8 layers 0.006 nats above the entropy, 0.005 with random permutations). Interleaving at
    strides 1, 2, 4, ... (every pair split directly) was measured and dropped: on the sine10d chain
    0.711 against 0.154 (RealNVP, 16 layers), 0.105 against 0.085 (NSF). None (a reversal) up to 2-D."""
    if event_dim <= 2:
        return None
    split, idx = event_dim // 2, np.arange(event_dim)
    odd_first = np.concatenate([idx[1::2], idx[0::2]])
    even_first = np.concatenate([idx[0::2][:split], np.setdiff1d(idx, idx[0::2][:split])])
    # arrangement[i]: the data coordinates layer i sees, in its order (layer num_layers - 1 meets the
    # data); the permutation after layer i turns arrangement[i] into arrangement[i + 1] (identity: x)
    arrangement = [odd_first if (num_layers - 1 - i) % 2 == 0 else even_first for i in range(num_layers)]
    arrangement.append(idx)
    return np.stack([np.argsort(np.argsort(arrangement[i + 1])[arrangement[i]]) for i in range(num_layers)])


PERMUTATIONS = {"random": mixing_permutations, "interleaved": interleaved_permutations}


class Permute(distrax.Bijector):
    """x[..., perm] for an integer permutation (a traced array inside a scan): log-det 0."""

    def __init__(self, perm):
        super().__init__(event_ndims_in=1)
        self.perm = perm

    def forward_and_log_det(self, x):
        return jnp.take(x, self.perm, axis=-1), jnp.zeros(x.shape[:-1], x.dtype)

    def inverse_and_log_det(self, y):
        return jnp.take(y, jnp.argsort(self.perm), axis=-1), jnp.zeros(y.shape[:-1], y.dtype)


def stacked_layers(
    num_layers: int,
    layer: Callable[[dict], distrax.Bijector],
    init_one: Callable,
    scan: bool,
    unroll: int | bool | None = None,
    perms: np.ndarray | None = None,
):
    """(init, bijector(params, context=None)) for `num_layers` identical layers `layer(p, context)`, each
    followed by a `Reverse` (or, with `perms` (num_layers, D), layer i by the permutation perms[i]).

    scan=True stacks the parameters and runs the layers under `lax.scan` (`bijectors.ScanChain`):
    Python traces one layer. `unroll` is the scan's: True (every layer in the compiled program: the
    fastest steps, compile time growing with depth) or 1 (a loop: the compile time of one layer);
    None picks True up to 8 layers and 1 beyond (`make bench-families`, variant `looped`, measures
    the trade). scan=False keeps a list of parameters and chains the layers in Python (traced one by
    one).
    """
    if unroll is None:
        unroll = True if num_layers <= 8 else 1

    def with_reverse(p, context) -> distrax.Bijector:
        if perms is None:
            return distrax.Chain([Reverse(), layer(p, context)])  # the layer acts first, then the reversal
        return distrax.Chain([Permute(p["perm"]), layer(p["layer"], context)])

    def per_layer(params):  # what the scan (or the Python loop) walks over: each layer's slice
        if perms is None:
            return params["layers"]
        if scan:
            return {"layer": params["layers"], "perm": jnp.asarray(perms)}
        return [{"layer": p, "perm": jnp.asarray(q)} for p, q in zip(params["layers"], perms, strict=True)]

    @jax.jit  # one compiled call, not one per operation of every layer's init
    def init(key, x):
        keys = jax.random.split(key, num_layers)
        if scan:
            return {"layers": jax.vmap(init_one)(keys)}
        return {"layers": [init_one(k) for k in keys]}

    def bijector(params, context=None):
        if scan:
            return ScanChain(
                lambda p: with_reverse(p, context), per_layer(params), event_ndims=1, unroll=unroll
            )
        # distrax.Chain applies its last element first: layer 0 acts first on the base sample
        return distrax.Chain([with_reverse(p, context) for p in per_layer(params)][::-1])

    return init, bijector


def conditioner_input(x1, context, split: int):
    """The conditioner's feature-major input (features, N): the kept half of x, the context (a
    conditional flow), or a constant 1 when there is neither (1-D data: the layer is then an
    unconditional elementwise map with learned parameters)."""
    n = math.prod(x1.shape[:-1])
    parts = [x1.reshape(n, split)] if split else []
    if context is not None:
        parts.append(jnp.asarray(context, x1.dtype).reshape(n, -1))
    return (jnp.concatenate(parts, axis=1) if parts else jnp.ones((n, 1), x1.dtype)).T


def coupling_flow(
    event_dim: int,
    num_layers: int,
    hidden: Sequence[int],
    transformer: str,
    num_bins: int = 8,
    tail_bound: float = 4.0,
    activation: str = "relu",
    scan_layers: bool = True,
    unroll_layers: int | bool | None = None,
    name: str | None = None,
    compute_dtype: str = "float32",
    context_dim: int | None = None,
    fit_tail_bound: bool = False,
    permutation: str = "random",
) -> Model:
    """Coupling flow: each layer keeps the first half of x fixed and transforms the second half
    elementwise with parameters computed from the first (and the context of a conditional flow);
    a fixed permutation between layers makes the halves alternate: a reversal in 2D (x2 given x1,
    then x1 given x2), a seeded random permutation per layer beyond (a reversal alone would keep the
    same coordinates together in a half forever: x2 would never be conditioned on x1), or with
    `permutation="interleaved"` odd and even coordinates of the data's order in turn.
    1-D data have no half to keep: each layer is then an elementwise map with learned parameters.
    `fit_tail_bound` (splines): the spline's box is [-B, B], B = max(tail_bound, 1.2 max |x|) over the
    init examples (frozen, `params["spline_box"]`), so data in the tails are not left to the identity.

    `compute_dtype="bfloat16"`: the conditioner MLPs (nearly all the FLOPs) compute in bfloat16
    with float32 parameters; their outputs, the transformers, log-determinants and log p stay
    float32, where bfloat16's 8-bit mantissa would corrupt the numbers.
    `scan_layers`, `unroll_layers`: how the layers are compiled (see `stacked_layers`)."""
    split = event_dim // 2
    d2 = event_dim - split
    if transformer == "affine":
        per_dim, make_transformer = 2, affine_transformer
    elif transformer == "spline":
        per_dim, make_transformer = 3 * num_bins - 1, spline_transformer(tail_bound)
    else:
        raise ValueError(f"unknown coupling transformer {transformer!r}; choose 'affine' or 'spline'")
    net = FeatureMajorMLP(
        tuple(hidden),
        per_dim * d2,
        activation_fn(activation),
        zero_init_last=True,
        dtype=dtype_of(compute_dtype),
        uniform_bias=True,
    )
    in_features = (split + (context_dim or 0)) or 1

    def init_one(key):
        return net.init(key, jnp.zeros((in_features, 1)))["params"]

    def layer(p, context=None, box=tail_bound) -> distrax.Bijector:
        transform = spline_transformer(box) if transformer == "spline" else make_transformer

        def conditioner(x1):
            # (..., split) -> (per_dim, ..., d2): the MLP runs feature-major (see `nn.mlp`); for 2-D
            # data both transposes are free reshapes
            batch = x1.shape[:-1]
            out = net.apply({"params": p}, conditioner_input(x1, context, split))  # (per_dim * d2, N)
            out = out.reshape(per_dim, d2, -1)
            return jnp.swapaxes(out, 1, 2).reshape(per_dim, *batch, d2)

        return distrax.SplitCoupling(split, event_ndims=1, conditioner=conditioner, bijector=transform)

    if permutation not in PERMUTATIONS:
        raise ValueError(f"unknown permutation {permutation!r}; choose one of {sorted(PERMUTATIONS)}")
    perms = PERMUTATIONS[permutation](event_dim, num_layers)
    init_layers, _ = stacked_layers(num_layers, layer, init_one, scan_layers, unroll_layers, perms)

    def init(key, x):
        params = init_layers(key, x)
        if fit_tail_bound and transformer == "spline":
            x = x["x"] if isinstance(x, dict) else x
            params["spline_box"] = jnp.maximum(
                tail_bound, 1.2 * jnp.max(jnp.abs(jnp.asarray(x, jnp.float32)))
            )
        return params

    def bijector(params, context=None):
        box = params.get("spline_box", tail_bound)
        at_box = lambda p, c=None: layer(p, c, box)
        return stacked_layers(num_layers, at_box, init_one, scan_layers, unroll_layers, perms)[1](
            params, context
        )

    info = dict(
        family="flow",
        architecture=f"{transformer} coupling x{num_layers}, MLP {list(hidden)} {activation}",
        compute_dtype=compute_dtype,
        num_bins=num_bins if transformer == "spline" else None,
        tail_bound=tail_bound if transformer == "spline" else None,
    )
    default = "realnvp" if transformer == "affine" else "nsf"
    return flow_model(name or default, event_dim, init, bijector, info, context_dim)


def realnvp(
    event_dim: int,
    num_layers: int = 8,
    hidden: Sequence[int] = (64, 64),
    activation: str = "relu",
    scan_layers: bool = True,
    unroll_layers: int | bool | None = None,
    name: str = "realnvp",
    compute_dtype: str = "float32",
    context_dim: int | None = None,
    permutation: str = "random",
) -> Model:
    """RealNVP: affine coupling layers (conditional on a context of `context_dim` when given);
    `permutation` between layers: "random" (seeded) or "interleaved" (odd / even coordinates in turn)."""
    return coupling_flow(
        event_dim,
        num_layers,
        hidden,
        "affine",
        activation=activation,
        scan_layers=scan_layers,
        unroll_layers=unroll_layers,
        name=name,
        compute_dtype=compute_dtype,
        context_dim=context_dim,
        permutation=permutation,
    )


def nsf(
    event_dim: int,
    num_layers: int = 4,
    hidden: Sequence[int] = (64, 64),
    num_bins: int = 8,
    tail_bound: float = 4.0,
    activation: str = "relu",
    scan_layers: bool = True,
    unroll_layers: int | bool | None = None,
    name: str = "nsf",
    compute_dtype: str = "float32",
    context_dim: int | None = None,
    fit_tail_bound: bool = True,
    permutation: str = "random",
) -> Model:
    """Neural spline flow: rational-quadratic spline coupling layers (conditional with `context_dim`).
    The splines act on [-B, B] (identity outside), B = tail_bound, or with `fit_tail_bound` the larger
    of it and 1.2 max |x| of the (standardized) init examples: heavy tails stay inside the box."""
    return coupling_flow(
        event_dim,
        num_layers,
        hidden,
        "spline",
        num_bins,
        tail_bound,
        activation,
        scan_layers,
        unroll_layers,
        name=name,
        compute_dtype=compute_dtype,
        context_dim=context_dim,
        fit_tail_bound=fit_tail_bound,
        permutation=permutation,
    )


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


def made_width(event_dim: int, per_degree: int = 16, floor: int = 64, cap: int = 1024) -> int:
    """The default MADE hidden width for `event_dim` inputs: `per_degree` units for each of the D - 1
    degrees a hidden unit can take (a unit of degree k sees x_<=k, so only the units of degree d - 1
    carry x_(d-1) to output d), at least `floor`, at most `cap`. A fixed 64 leaves about 7 such units in
    10-D: a MAF on the sine10d chain stopped 0.4-1.2 nats above the entropy at 64, 0.04 at 128."""
    return int(min(cap, max(floor, per_degree * (event_dim - 1))))


def maf(
    event_dim: int,
    num_layers: int = 5,
    hidden: Sequence[int] | None = None,
    activation: str = "relu",
    scan_layers: bool = True,
    unroll_layers: int | bool | None = None,
    name: str = "maf",
    compute_dtype: str = "float32",
    context_dim: int | None = None,
) -> Model:
    """Masked autoregressive flow; a reversal between layers alternates the autoregressive order.
    With `context_dim`, every conditional also sees the context (a conditional density).

    `hidden` defaults to two layers of `made_width(event_dim)` units (64 up to 5-D, 16 per input beyond).
    `compute_dtype="bfloat16"`: the MADE computes in bfloat16 (float32 parameters and outputs)."""
    hidden = tuple(hidden) if hidden is not None else (made_width(event_dim),) * 2
    net = MADE(
        tuple(range(event_dim)),
        hidden,
        2,
        activation_fn(activation),
        dtype=dtype_of(compute_dtype),
        context_dim=context_dim or 0,
    )

    def init_one(key):
        context = jnp.zeros((1, context_dim)) if context_dim else None
        return net.init(key, jnp.zeros((1, event_dim)), context)["params"]

    def layer(p, context=None) -> distrax.Bijector:
        return MaskedAutoregressiveAffine(lambda x: net.apply({"params": p}, x, context), event_dim)

    init, bijector = stacked_layers(num_layers, layer, init_one, scan_layers, unroll_layers)
    info = dict(
        family="flow",
        architecture=f"MAF x{num_layers}, MADE {list(hidden)} {activation}",
        compute_dtype=compute_dtype,
    )
    return flow_model(name, event_dim, init, bijector, info, context_dim)
