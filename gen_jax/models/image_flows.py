"""Multi-scale image flow: RealNVP / Glow (Dinh et al. 2017; Kingma & Dhariwal 2018) for 8-bit images.

    model = make_model("glow", (28, 28, 1), steps_per_level=8, channels=64)
    logp = model.log_prob(params, x_uint8, key)        # log P(x) of the discrete image, nats

The density lives on the logit scale of uniformly dequantized data. From an image x (uint8) to
the latent z (normalizing direction; every bijector's `forward`):

    y = (x + u) / 256                                       dequantize, u ~ U[0, 1)^D
    v = logit(alpha + (1 - 2 alpha) y)                      LogitTransform (elementwise)
    for each scale l = 0 .. L-1:
        squeeze                                             (H, W, C) -> (H/2, W/2, 4C)
        K steps: actnorm -> invertible 1x1 conv (LU) -> affine coupling (ResNet conditioner)
        not last scale: [learned prior] factor out half the channels into z
        last scale:     [learned prior] everything left goes into z
    z ~ N(0, I)

For 28x28x1: 14x14x4 (K steps) -> factor out 14x14x2 -> 7x7x8 (K steps) -> 7x7x8 into z.
The learned prior (Glow's split prior, `learn_prior=True`) is the factored-out half's Gaussian
with mean and scale predicted from the kept half by a zero-initialised 3x3 convolution, written
as one more affine coupling before the split; at the last scale it is a per-channel affine
(an ActNorm initialised from data). So the base stays N(0, I) and every piece is a bijector.

    log q(y) = log N(z; 0, I) + log|det dz/dy|           (distrax.Transformed)
    log P(x) >= log q(y) - D log 256                       (gen_jax.data.transforms)

`log_prob` returns that bound on the discrete log-likelihood for ONE u per image, drawn from `key`:
an unbiased estimate of a lower bound, so `kind` is LOWER_BOUND (the density of the dequantized
image is exact, the discrete image's is not). It declares the `Dequantized` capability: averaging
k draws of u with importance weights (`gen_jax.likelihood.dequantization`) gives an estimate that
rises toward log P(x) with k.

Parameters are a pytree; the bijector is rebuilt from them on every call (free under jit). The
K steps of a scale are stacked and run by `ScanChain` (one `lax.scan`), so compile time does not
grow with depth. ActNorm is initialised from the data in `init` (Glow's data-dependent init):
each actnorm normalises its input on the example batch, layer by layer. The permutations and
signs of the LU-form 1x1 convolutions are constants of the architecture, drawn from `seed`.
"""

from __future__ import annotations

import dataclasses
import math

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.core import Kind, Model, check_batch
from gen_jax.core.capabilities import Dequantized
from gen_jax.data.transforms import LogitTransform, dequantize, discrete_log_prob_from_continuous
from gen_jax.models.bijectors import (
    ActNorm,
    Invertible1x1Conv,
    MultiScale,
    ScanChain,
    Squeeze,
    actnorm_init,
    lu_init,
)
from gen_jax.models.common import nll_loss
from gen_jax.models.flows import soft_clamp
from gen_jax.nn.conv import Conv
from gen_jax.nn.mlp import compute_dtype as dtype_of
from gen_jax.nn.mlp import mixed_precision
from gen_jax.nn.resnet import ResNetConditioner

Array = jax.Array
OBJECTIVE = "maximum likelihood on uniformly dequantized data"


def _scale_shapes(event_shape: tuple[int, int, int], num_levels: int) -> list[tuple[int, int, int]]:
    """(H, W, C) inside each scale, after its squeeze; rejects sizes that do not divide."""
    h, w, c = event_shape
    shapes = []
    for level in range(num_levels):
        if h % 2 or w % 2:
            raise ValueError(
                f"a {num_levels}-scale flow squeezes {event_shape[:2]} images {num_levels} times, but scale "
                f"{level} gets {h}x{w}, not divisible by 2: use fewer levels (28x28 allows 2) "
                "or pad the images"
            )
        h, w, c = h // 2, w // 2, 4 * c
        shapes.append((h, w, c))
        c = c // 2  # the kept half goes on to the next scale
    return shapes


def _affine(max_log_scale: float):
    def transformer(p: Array) -> distrax.Bijector:  # p (..., 2): shift and raw log-scale
        return distrax.ScalarAffine(shift=p[..., 0], log_scale=soft_clamp(p[..., 1], max_log_scale))

    return transformer


def _coupling(net: nn.Module, p, channels: int, max_log_scale: float, dtype=None) -> distrax.SplitCoupling:
    """Affine coupling on channels: the first C//2 condition the other C - C//2 (the conditioner
    computing in `dtype`, its output and the log-determinant in float32)."""
    keep = channels // 2
    apply = mixed_precision(net.apply, dtype)

    def conditioner(x1: Array) -> Array:
        return apply({"params": p}, x1).reshape(x1.shape[:-1] + (channels - keep, 2))

    return distrax.SplitCoupling(
        split_index=keep, event_ndims=3, conditioner=conditioner, bijector=_affine(max_log_scale)
    )


@dataclasses.dataclass(frozen=True, eq=False)
class GlowArch:
    """The pieces of a multi-scale Glow, as functions of its parameters (see `glow`)."""

    shapes: tuple[tuple[int, int, int], ...]  # (H, W, C) inside each scale, after its squeeze
    k_steps: int
    nets: tuple  # coupling conditioners, one per scale
    prior_nets: tuple  # learned-prior convolutions, one per scale
    lu: tuple  # per scale, per step: `lu_init` of the 1x1 convolution
    learn_prior: bool
    max_log_scale: float
    unroll: bool
    logit: distrax.Bijector
    dtype: object = None  # the conditioners' compute dtype (None: float32)

    @property
    def num_levels(self) -> int:
        """Number of scales."""
        return len(self.shapes)

    def constants(self, level: int) -> dict:
        """The fixed permutations and signs of the scale's 1x1 convolutions, stacked over steps."""
        return {name: jnp.asarray(np.stack([d[name] for d in self.lu[level]])) for name in ("perm", "sign")}

    def step(self, level: int, p) -> distrax.Bijector:
        """One flow step (actnorm -> 1x1 conv -> coupling); p: this step's params and constants."""
        c = self.shapes[level][2]
        conv = Invertible1x1Conv(
            p["conv"]["lower"], p["conv"]["upper"], p["conv"]["log_s"], p["perm"], p["sign"]
        )
        actnorm = ActNorm(p["actnorm"]["bias"], p["actnorm"]["log_scale"])
        return distrax.Chain(
            [_coupling(self.nets[level], p["coupling"], c, self.max_log_scale, self.dtype), conv, actnorm]
        )

    def steps(self, level: int, lp) -> ScanChain:
        """The K steps of a scale, stacked and run by one lax.scan."""
        stacked = {**lp["steps"], **self.constants(level)}
        return ScanChain(lambda p: self.step(level, p), stacked, event_ndims=3, unroll=self.unroll)

    def prior(self, level: int, lp) -> distrax.Bijector | None:
        """The learned prior of a scale: the factored-out half given the kept half, or (top) an affine."""
        if not self.learn_prior:
            return None
        if level < self.num_levels - 1:
            return _coupling(self.prior_nets[level], lp["prior"], self.shapes[level][2], self.max_log_scale)
        return ActNorm(lp["prior"]["bias"], lp["prior"]["log_scale"])

    def encoder(self, params) -> distrax.Bijector:
        """Image y in (0, 1)^D -> flat latent z (forward), as one distrax bijector."""
        rest = None
        for level in reversed(range(self.num_levels)):
            lp = params["levels"][level]
            top = self.prior(level, lp)
            parts = ([top] if top is not None else []) + [self.steps(level, lp), Squeeze(2)]
            rest = MultiScale(distrax.Chain(parts), self.shapes[level], rest)  # Chain applies its last first
        return distrax.Chain([rest, self.logit])

    def init_params(self, key) -> dict:
        """Parameters before the data-dependent init: zero actnorms, random rotations, zero priors."""
        levels = []
        for level, (h, w, c) in enumerate(self.shapes):
            keys = jax.random.split(jax.random.fold_in(key, 100 + level), self.k_steps + 1)
            dummy = jnp.zeros((1, h, w, c // 2))
            coupling = jax.vmap(lambda k, n=self.nets[level], d=dummy: n.init(k, d)["params"])(
                keys[: self.k_steps]
            )
            conv = {
                n: jnp.asarray(np.stack([d[n] for d in self.lu[level]])) for n in ("lower", "upper", "log_s")
            }
            zeros = jnp.zeros((self.k_steps, c))
            lp = {
                "steps": {"actnorm": {"bias": zeros, "log_scale": zeros}, "conv": conv, "coupling": coupling}
            }
            if self.learn_prior:
                lp["prior"] = (
                    self.prior_nets[level].init(keys[-1], dummy)["params"]
                    if level < self.num_levels - 1
                    else {"bias": jnp.zeros(c), "log_scale": jnp.zeros(c)}
                )
            levels.append(lp)
        return {"levels": levels}

    def describe(self, channels, num_blocks, block_kernel, conv_impl, alpha, dtype=None) -> str:
        """The architecture, for tables."""
        scales = " -> ".join(f"{h}x{w}x{c}" for h, w, c in self.shapes)
        prior = "learned" if self.learn_prior else "standard normal"
        return (
            f"Glow {self.num_levels} scales ({scales}) x {self.k_steps} steps (actnorm, 1x1 conv LU, affine "
            f"coupling), ResNet conditioner {channels} ch x {num_blocks} blocks "
            f"({block_kernel}x{block_kernel}), "
            f"{prior} prior, logit alpha={alpha}" + (f", conditioners in {dtype.__name__}" if dtype else "")
        )

    def info(self, net: dict, alpha: float) -> dict:
        """`Model.info`: family, architecture, objective, and `constants`: the architecture's fixed
        arrays (drawn from the seed, not parameters) as numpy arrays by path, for a port of the model to
        another framework: "levels/{level}/perm" (K, C, C) and "levels/{level}/sign" (K, C), the
        permutations and signs of the K 1x1 convolutions of each scale (C: its channels)."""
        constants = {
            f"levels/{level}/{key}": np.stack([d[key] for d in steps])
            for level, steps in enumerate(self.lu)
            for key in ("perm", "sign")
        }
        architecture = self.describe(**net, alpha=alpha)
        return dict(family="flow", architecture=architecture, objective=OBJECTIVE, constants=constants)

    def data_dependent_init(self, params, v):
        """Set every actnorm so that its output is zero-mean, unit-variance per channel on v (Glow's
        data-dependent init), layer by layer; the top prior likewise."""
        for level in range(self.num_levels):
            lp = params["levels"][level]
            v, _ = Squeeze(2).forward_and_log_det(v)
            consts = self.constants(level)
            for k in range(self.k_steps):
                an = actnorm_init(v)
                for name in ("bias", "log_scale"):
                    lp["steps"]["actnorm"][name] = lp["steps"]["actnorm"][name].at[k].set(an[name])
                p_k = jax.tree_util.tree_map(lambda a, k=k: a[k], lp["steps"])
                p_k.update({name: a[k] for name, a in consts.items()})
                v, _ = self.step(level, p_k).forward_and_log_det(v)
            if self.learn_prior and level == self.num_levels - 1:
                lp["prior"] = actnorm_init(v)
            v = v[..., : self.shapes[level][2] // 2]  # the prior coupling starts as the identity
        return params


def glow_arch(
    shapes,
    k_steps,
    learn_prior,
    alpha,
    max_log_scale,
    seed,
    unroll,
    channels,
    num_blocks,
    block_kernel,
    conv_impl,
    dtype=None,
) -> GlowArch:
    """The networks and constants of a Glow: one coupling conditioner and one prior convolution per
    scale, and a random rotation (LU form) per step drawn from `seed`."""
    zeros = nn.initializers.zeros
    halves = [2 * (c - c // 2) for (_, _, c) in shapes]
    return GlowArch(
        shapes=tuple(shapes),
        k_steps=k_steps,
        nets=tuple(ResNetConditioner(channels, out, num_blocks, block_kernel, conv_impl) for out in halves),
        prior_nets=tuple(
            Conv(out, (3, 3), kernel_init=zeros, bias_init=zeros, impl=conv_impl) for out in halves
        ),
        lu=tuple(
            tuple(lu_init(np.random.SeedSequence([seed, level, k]), c) for k in range(k_steps))
            for level, (_, _, c) in enumerate(shapes)
        ),
        learn_prior=learn_prior,
        max_log_scale=max_log_scale,
        unroll=unroll,
        logit=distrax.Block(LogitTransform(alpha), 3),
        dtype=dtype,
    )


def glow(
    event_shape: tuple[int, ...] = (28, 28, 1),
    num_levels: int = 2,
    steps_per_level: int = 8,
    channels: int = 64,
    num_blocks: int = 1,
    block_kernel: int = 3,
    learn_prior: bool = True,
    alpha: float = 0.05,
    max_log_scale: float = 3.0,
    seed: int = 0,
    unroll_steps: bool = True,
    conv_impl: str = "auto",
    compute_dtype: str = "float32",
    name: str = "glow",
) -> Model:
    """A multi-scale Glow for 8-bit images of shape (H, W, C), on the logit scale.

    Args:
      num_levels, steps_per_level: scales (each squeezes by 2; 28x28 allows 2), K flow steps per scale.
      channels, num_blocks, block_kernel: the coupling conditioner (`gen_jax.nn.resnet`).
      learn_prior: factored-out halves get a Gaussian conditioned on the kept half, and the last
        scale a learned per-channel mean and scale; False: plain N(0, I) everywhere.
      alpha: the logit transform's squeeze (RealNVP: 0.05 on CIFAR-10, 1e-6 on MNIST). seed: draws
        the fixed permutations and signs of the 1x1 convolutions.
      max_log_scale: coupling log-scales are soft-clamped to (-max_log_scale, max_log_scale).
      unroll_steps: unroll a scale's K steps (`ScanChain`): faster on XLA:CPU, longer compile.
      conv_impl: the conditioners' convolutions (`gen_jax.nn.conv`: "auto" is im2col on CPU).
      compute_dtype: "bfloat16": the conditioners in bfloat16 (log-dets and likelihood in float32).

    `info["constants"]`: the 1x1 convolutions' fixed permutations and signs by path (`GlowArch.info`).
    """
    event_shape = tuple(int(s) for s in event_shape)
    if len(event_shape) != 3:
        raise ValueError(
            f"glow models images of shape (H, W, C); got examples of shape {event_shape}. "
            "Use realnvp / nsf / maf for vectors."
        )
    shapes = _scale_shapes(event_shape, num_levels)
    num_dims = math.prod(event_shape)
    net = dict(channels=channels, num_blocks=num_blocks, block_kernel=block_kernel, conv_impl=conv_impl)
    net.update(dtype=dtype_of(compute_dtype))
    arch = glow_arch(shapes, steps_per_level, learn_prior, alpha, max_log_scale, seed, unroll_steps, **net)

    def distribution(params) -> distrax.Distribution:
        """The continuous density of ONE dequantized image y (H, W, C) in (0, 1)."""
        base = distrax.MultivariateNormalDiag(jnp.zeros(num_dims), jnp.ones(num_dims))
        return distrax.Transformed(base, distrax.Inverse(arch.encoder(params)))

    def init(key, x):
        check_batch(x, event_shape, "the example batch")
        v = arch.logit.forward(dequantize(jnp.asarray(x), jax.random.fold_in(key, 1)))
        return jax.jit(lambda p, v: arch.data_dependent_init(p, v))(arch.init_params(key), v)

    def log_prob(params, x, key=None):
        if key is None:
            raise ValueError(
                f"{name}.log_prob needs a PRNG key: it dequantizes the 8-bit images (y = (x + u) / 256)"
            )
        check_batch(x, event_shape)
        log_q = jax.vmap(distribution(params).log_prob)(dequantize(x, key))
        return discrete_log_prob_from_continuous(log_q, num_dims)

    def sample(params, key, n):
        dist = distribution(params)
        y = jax.vmap(lambda k: dist.sample(seed=k))(jax.random.split(key, n))
        return jnp.clip(jnp.floor(y * 256.0), 0, 255).astype(jnp.uint8)

    return Model(
        name=name,
        event_shape=event_shape,
        kind=Kind.LOWER_BOUND,
        init=init,
        loss=nll_loss(log_prob),
        log_prob=log_prob,
        sample=sample,
        info=arch.info(net, alpha),
        capabilities=(Dequantized(),),
        internals={"distribution": distribution, "arch": arch},
    )
