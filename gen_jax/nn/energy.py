"""Energy networks: a scalar energy E(x) of one batch of vectors or images (`gen_jax.models.ebm`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.nn.conv import Conv
from gen_jax.nn.mlp import MLP
from gen_jax.nn.unet import UNet


class EnergyMLP(nn.Module):
    """Scalar energy of vectors (batch, D); with `conditional`, also of the noise level log sigma.

    `fourier_features` F > 0: the MLP reads [x, sin(x W), cos(x W)], W (D, F) fixed random frequencies
    N(0, fourier_scale^2) drawn from PRNG key 0 (a constant, never trained; Tancik et al. 2020). A plain
    MLP is slow to fit a log-density with sharp edges or thin ridges (its spectral bias); these
    features give it the high frequencies (see `make contrast`: rings, checkerboard, 2spirals)."""

    hidden: Sequence[int]
    activation: Callable[[jax.Array], jax.Array] = nn.silu
    conditional: bool = False
    fourier_features: int = 0
    fourier_scale: float = 1.0

    @nn.compact
    def __call__(self, x: jax.Array, log_sigma: jax.Array) -> jax.Array:
        if self.fourier_features:
            w = jax.random.normal(jax.random.key(0), (x.shape[-1], self.fourier_features))
            proj = x @ (self.fourier_scale * w).astype(x.dtype)
            x = jnp.concatenate([x, jnp.sin(proj), jnp.cos(proj)], axis=-1)
        if self.conditional:
            x = jnp.concatenate([x, log_sigma[:, None]], axis=-1)
        return MLP(tuple(self.hidden), 1, self.activation)(x)[:, 0]


class EnergyConv(nn.Module):
    """Scalar energy of images (batch, H, W, C): 3x3 convolutions (stride 2 after the first),
    global average pooling, then a dense head; `conditional` adds log sigma as an input channel."""

    features: Sequence[int] = (32, 64)
    activation: Callable[[jax.Array], jax.Array] = nn.silu
    conditional: bool = False
    conv_impl: str = "auto"  # `gen_jax.nn.conv.conv2d`: im2col on CPU, lax.conv elsewhere

    @nn.compact
    def __call__(self, x: jax.Array, log_sigma: jax.Array) -> jax.Array:
        if self.conditional:
            plane = jnp.broadcast_to(log_sigma[:, None, None, None], (*x.shape[:-1], 1))
            x = jnp.concatenate([x, plane], axis=-1)
        for i, width in enumerate(self.features):
            strides = (1, 1) if i == 0 else (2, 2)
            x = self.activation(Conv(width, (3, 3), strides=strides, impl=self.conv_impl)(x))
        x = jnp.mean(x, axis=(1, 2))
        x = self.activation(nn.Dense(self.features[-1])(x))
        return nn.Dense(1)(x)[:, 0]


class EnergyUNet(nn.Module):
    """A noise-conditional energy of images built on the diffusion U-Net (`gen_jax.nn.unet`).

    The U-Net is a preconditioned denoiser (Karras et al. 2022): for standardized images z at
    noise level s (standardized units), D(z) = c_skip z + c_out net(c_in z, level) with
    c_skip = 1 / (s^2 + 1), c_out = s / sqrt(s^2 + 1), c_in = 1 / sqrt(s^2 + 1). The energy is the
    denoising autoencoder's reconstruction error (Salimans & Ho 2021),

        E(z, s) = |z - D(z)|^2 / (2 s^2) = |s z / (s^2 + 1) - net / sqrt(s^2 + 1)|^2 / 2  >= 0,

    whose gradient is the denoiser's score (z - D) / s^2 where the denoiser's Jacobian is the
    projection onto the data's tangent directions. Being a sum of squares it is bounded below, so
    with the model's weak quadratic exp(-E) always integrates to a finite Z, which AIS can then
    estimate: the inner product <z, z - D> / 2 s^2, exact for Gaussian data, is not bounded below
    and a trained one had wells far below the data that AIS kept finding (log Z 6,759 at 200
    temperatures, 35,134 at 1,000). `level` in [0, 1] is log sigma rescaled over the training
    range (the time embedding's input).
    """

    channels: Sequence[int] = (32, 64)
    patch: int = 2
    attention: bool = True
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, z: jax.Array, level: jax.Array, s: jax.Array) -> jax.Array:
        s = s.reshape(-1, 1, 1, 1)
        c_in = jax.lax.rsqrt(s**2 + 1)
        net = UNet(
            z.shape[-1],
            tuple(self.channels),
            attention=self.attention,
            patch=self.patch,
            conv_impl=self.conv_impl,
        )(c_in * z, level)
        residual = s * c_in**2 * z - c_in * net  # (z - D(z)) / s
        return 0.5 * jnp.sum(residual**2, axis=tuple(range(1, z.ndim)))
