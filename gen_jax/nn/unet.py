"""A small U-Net for 28x28 images, conditioned on a scalar (diffusion time / noise level).

The DDPM / VDM layout at CPU size: residual blocks (GroupNorm, SiLU, 3x3 convolutions, the
time embedding added between the two convolutions, the second convolution zero-initialised),
downsampling by strided convolution, upsampling by nearest-neighbour resize and a convolution,
skip connections concatenated, and one self-attention block at the lowest resolution.

    net = UNet(out_channels=1)                       # 28x28 -> 14x14 -> 7x7 with channels (32, 64, 64)
    eps_hat = net.apply(params, x, c)                # x (B, 28, 28, 1), c (B,)

Sizes that are not divisible by 2 ** (levels - 1) are rejected with a clear error.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.nn.conv import Conv, depth_to_space, space_to_depth
from gen_jax.nn.embeddings import sinusoidal_embedding
from gen_jax.nn.mlp import swish


def _groups(channels: int, max_groups: int) -> int:
    g = min(max_groups, channels)
    while channels % g:
        g -= 1
    return g


class ResBlock(nn.Module):
    """GroupNorm, SiLU, 3x3 convolutions, the time embedding added between them; residual."""

    channels: int
    groups: int = 8
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, emb: jax.Array) -> jax.Array:
        h = swish(nn.GroupNorm(_groups(x.shape[-1], self.groups))(x))
        h = Conv(self.channels, (3, 3), impl=self.conv_impl)(h)
        h = h + nn.Dense(self.channels)(emb)[:, None, None, :]
        h = swish(nn.GroupNorm(_groups(self.channels, self.groups))(h))
        h = Conv(self.channels, (3, 3), kernel_init=nn.initializers.zeros, impl=self.conv_impl)(h)
        if x.shape[-1] != self.channels:
            x = Conv(self.channels, (1, 1), name="skip", impl=self.conv_impl)(x)
        return x + h


class SelfAttention(nn.Module):
    """Single-head self-attention over the positions of a feature map, residual."""

    groups: int = 8

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b, hgt, wid, c = x.shape
        h = nn.GroupNorm(_groups(c, self.groups))(x).reshape(b, hgt * wid, c)
        h = nn.MultiHeadDotProductAttention(num_heads=1, out_kernel_init=nn.initializers.zeros)(h)
        return x + h.reshape(b, hgt, wid, c)


class UNet(nn.Module):
    """(x of shape (B, H, W, C), c of shape (B,)) -> (B, H, W, out_channels)."""

    out_channels: int
    channels: Sequence[int] = (32, 64, 64)  # one entry per resolution level
    num_res_blocks: int = 1
    embed_dim: int = 64
    embed_scale: float = 1000.0  # c is multiplied by this before the sinusoids (see sinusoidal_embedding)
    attention: bool = True  # a self-attention block at the lowest resolution
    groups: int = 8
    patch: int = 1  # > 1: the network runs on (H/p, W/p, C p^2) patches (space to depth), p^2 cheaper
    conv_impl: str = "auto"  # `gen_jax.nn.conv.conv2d`: im2col on CPU, lax.conv elsewhere

    @nn.compact
    def __call__(self, x: jax.Array, c: jax.Array) -> jax.Array:
        if x.ndim != 4 or c.shape != x.shape[:1]:
            raise ValueError(f"UNet takes x (B, H, W, C) and c (B,); got {x.shape} and {c.shape}")
        if self.patch > 1:
            x = space_to_depth(x, self.patch)
        levels = len(self.channels)
        factor = 2 ** (levels - 1)
        if x.shape[1] % factor or x.shape[2] % factor:
            raise ValueError(
                f"UNet with {levels} levels needs height and width divisible by {factor}; "
                f"got {x.shape[1:3]}. Pad the images or use fewer `channels` levels."
            )
        emb = sinusoidal_embedding(c, self.embed_dim, self.embed_scale)
        emb = nn.Dense(4 * self.embed_dim)(swish(nn.Dense(4 * self.embed_dim)(emb)))

        h = Conv(self.channels[0], (3, 3), name="conv_in", impl=self.conv_impl)(x)
        skips = [h]
        for level, ch in enumerate(self.channels):
            for _ in range(self.num_res_blocks):
                h = ResBlock(ch, self.groups, self.conv_impl)(h, emb)
                skips.append(h)
            if level < levels - 1:
                h = Conv(ch, (3, 3), strides=(2, 2), name=f"down{level}", impl=self.conv_impl)(h)
                skips.append(h)

        h = ResBlock(self.channels[-1], self.groups, self.conv_impl)(h, emb)
        if self.attention:
            h = SelfAttention(self.groups)(h)
        h = ResBlock(self.channels[-1], self.groups, self.conv_impl)(h, emb)

        for level in reversed(range(levels)):
            ch = self.channels[level]
            for _ in range(self.num_res_blocks + 1):
                h = ResBlock(ch, self.groups, self.conv_impl)(jnp.concatenate([h, skips.pop()], axis=-1), emb)
            if level > 0:
                b, hgt, wid, _ = h.shape
                h = jax.image.resize(h, (b, 2 * hgt, 2 * wid, h.shape[-1]), "nearest")
                h = Conv(ch, (3, 3), name=f"up{level}", impl=self.conv_impl)(h)

        h = swish(nn.GroupNorm(_groups(h.shape[-1], self.groups))(h))
        out = self.out_channels * self.patch**2
        h = Conv(out, (3, 3), kernel_init=nn.initializers.zeros, name="conv_out", impl=self.conv_impl)(h)
        return depth_to_space(h, self.patch) if self.patch > 1 else h
