"""2D convolutions that are fast on XLA:CPU: one matrix product per layer (im2col).

XLA's CPU convolution emitter is slow for the small images and channel counts of this project, while
its matrix products run near the machine's peak (`make bench-families`, variant `lax_conv`, measures
the difference). So here a convolution is written as

    out[b, h, w] = sum_t x[b, h + di_t, w + dj_t] @ W_t          (zero outside the image)

for a static list of tap offsets (di_t, dj_t): the shifted views of the input are concatenated along
channels and multiplied by the stacked tap weights in one GEMM (the fastest of the formulations tried
on a CPU). A masked convolution (PixelCNN)
simply leaves its masked taps out, so it costs only what its receptive field needs.

`shift_conv` is that primitive, differentiated by plain autodiff: the backward pass is two more GEMMs
and a fused sum of shifted slices (a hand-written backward pass that re-gathers the output gradient
was slower). `conv2d` maps a (kh, kw, in, out) kernel with padding and mask onto it.

`Conv` is a Flax Linen drop-in for `nn.Conv` (inputs (..., H, W, C), any leading axes or none) with
any strides (a strided convolution reads strided shifted views: no wasted work) and 'SAME', 'VALID'
or explicit padding
(and an optional `mask` of the kernel's shape, as in `nn.Conv`): the same parameter names and shapes,
so checkpoints are interchangeable. It uses the im2col form on CPU and `lax.conv_general_dilated`
elsewhere (cuDNN is fast on GPU); `impl` forces one or the other.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Offsets = tuple[tuple[int, int], ...]
Padding = str | Sequence[tuple[int, int]]


def _shifted_views(
    x: jax.Array, offsets: Offsets, out_hw: tuple[int, int], strides: tuple[int, int] = (1, 1)
) -> jax.Array:
    """(B, H, W, C) -> (B, Ho, Wo, T * C): channel block t holds x[s h + di_t, s w + dj_t] (zero outside)."""
    ho, wo = out_hw
    sh, sw = strides
    h, w = x.shape[1:3]
    di = [d for d, _ in offsets]
    dj = [d for _, d in offsets]
    top, left = max(0, -min(di)), max(0, -min(dj))
    bottom, right = max(0, max(di) + sh * (ho - 1) + 1 - h), max(0, max(dj) + sw * (wo - 1) + 1 - w)
    xp = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    views = [
        xp[:, top + a : top + a + sh * (ho - 1) + 1 : sh, left + b : left + b + sw * (wo - 1) + 1 : sw]
        for a, b in offsets
    ]
    return views[0] if len(views) == 1 else jnp.concatenate(views, axis=-1)


def shift_conv(
    x: jax.Array,
    w: jax.Array,
    offsets: Sequence[tuple[int, int]],
    out_hw: tuple[int, int] | None = None,
    strides: tuple[int, int] = (1, 1),
) -> jax.Array:
    """out[b, h, w] = sum_t x[b, s h + di_t, s w + dj_t] @ w[t], zero outside the input, as one GEMM.

    Args:
      x: (B, H, W, C) input.
      w: (T, C, O) weights, one (C, O) matrix per tap.
      offsets: T static (di, dj) integer offsets.
      out_hw: output height and width (default: the input's, divided by the strides).
      strides: (sh, sw) steps between output positions in the input.
    """
    offsets = tuple((int(a), int(b)) for a, b in offsets)
    if x.ndim != 4:
        raise ValueError(f"shift_conv takes x of shape (B, H, W, C); got {x.shape}")
    if w.ndim != 3 or w.shape[0] != len(offsets) or w.shape[1] != x.shape[-1]:
        raise ValueError(
            f"shift_conv weights must have shape (taps={len(offsets)}, in={x.shape[-1]}, out); got {w.shape}"
        )
    strides = (int(strides[0]), int(strides[1]))
    if out_hw is None:
        out_hw = tuple(-(-n // s) for n, s in zip(x.shape[1:3], strides, strict=True))
    out_hw = (int(out_hw[0]), int(out_hw[1]))
    cols = _shifted_views(x, offsets, out_hw, strides)
    return jnp.einsum("bhwk,ko->bhwo", cols, w.reshape(-1, w.shape[-1]))


def resolve_padding(
    padding: Padding,
    kernel_size: tuple[int, int],
    in_hw: tuple[int, int] | None = None,
    strides: tuple[int, int] = (1, 1),
) -> tuple[tuple[int, int], ...]:
    """'SAME' / 'VALID' / ((top, bottom), (left, right)) -> explicit pairs, as `lax.conv` pads.

    'SAME' with strides > 1 needs the input size `in_hw`: the output is ceil(n / s) and the total
    padding max((out - 1) s + k - n, 0), the smaller half before (lax's rule)."""
    if isinstance(padding, str):
        if padding.upper() == "VALID":
            return ((0, 0), (0, 0))
        if padding.upper() == "SAME":
            if tuple(strides) == (1, 1):
                return tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel_size)
            if in_hw is None:
                raise ValueError("'SAME' padding with strides > 1 needs the input size (in_hw)")
            pads = []
            for n, k, s in zip(in_hw, kernel_size, strides, strict=True):
                total = max((-(-n // s) - 1) * s + k - n, 0)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        raise ValueError(
            f"padding {padding!r} is not supported; use 'SAME', 'VALID' or ((top, bottom), (left, right))"
        )
    pads = tuple((int(lo), int(hi)) for lo, hi in padding)
    if len(pads) != 2:
        raise ValueError(f"explicit padding needs two (low, high) pairs, one per spatial axis; got {padding}")
    return pads


def kernel_taps(kernel_size: tuple[int, int], mask: np.ndarray | None = None) -> tuple[tuple[int, int], ...]:
    """The (i, j) kernel positions a (kh, kw[, in, out]) mask leaves any weight at (all when None)."""
    kh, kw = kernel_size
    if mask is None:
        return tuple((i, j) for i in range(kh) for j in range(kw))
    m = np.asarray(mask)
    if m.shape[:2] != (kh, kw) or m.ndim not in (2, 4):
        raise ValueError(
            f"mask must have shape {(kh, kw)} or {(kh, kw)} + (in, out) (the kernel's); got {m.shape}"
        )
    live = m.reshape(kh, kw, -1).any(axis=-1)
    return tuple((i, j) for i in range(kh) for j in range(kw) if live[i, j])


def conv2d(
    x: jax.Array,
    kernel: jax.Array,
    padding: Padding = "SAME",
    mask: np.ndarray | None = None,
    impl: str = "auto",
    strides: tuple[int, int] = (1, 1),
) -> jax.Array:
    """Convolution of x (B, H, W, C) with kernel (kh, kw, C, O), equal to `lax.conv_general_dilated`.

    `mask` (static: numpy, shape (kh, kw) or the kernel's) zeroes kernel entries; masked taps are
    skipped entirely by the im2col form. `impl`: "auto" (im2col on CPU, lax.conv elsewhere),
    "im2col" or "lax".
    """
    kh, kw, cin, cout = kernel.shape
    if x.ndim != 4 or x.shape[-1] != cin:
        raise ValueError(f"conv2d takes x of shape (B, H, W, {cin}) for kernel {kernel.shape}; got {x.shape}")
    strides = (int(strides[0]), int(strides[1]))
    pads = resolve_padding(padding, (kh, kw), tuple(x.shape[1:3]), strides)
    if mask is not None:
        m = np.asarray(mask, np.float32)
        kernel = kernel * jnp.asarray(m if m.ndim == 4 else m[:, :, None, None], kernel.dtype)
    if impl == "auto":
        impl = "im2col" if jax.default_backend() == "cpu" else "lax"
    if impl == "lax":
        return jax.lax.conv_general_dilated(
            x, kernel, strides, pads, dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
    if impl != "im2col":
        raise ValueError(f"unknown conv impl {impl!r}; choose 'auto', 'im2col' or 'lax'")
    (top, bottom), (left, right) = pads
    sh, sw = strides
    out_hw = ((x.shape[1] + top + bottom - kh) // sh + 1, (x.shape[2] + left + right - kw) // sw + 1)
    if min(out_hw) < 1:
        raise ValueError(f"kernel {(kh, kw)} with padding {pads} leaves no output for input {x.shape[1:3]}")
    taps = kernel_taps((kh, kw), mask)
    w = jnp.stack([kernel[i, j] for i, j in taps])  # (T, C, O)
    return shift_conv(x, w, [(i - top, j - left) for i, j in taps], out_hw, strides)


class Conv(nn.Module):
    """Drop-in for `flax.linen.Conv` (same parameters: `kernel` (kh, kw, in, out), `bias`).

    strides: (sh, sw), as in `nn.Conv`. padding: 'SAME', 'VALID' or ((top, bottom), (left, right))
    (e.g. ((kh - 1, 0), (kw // 2, kw // 2)) for a convolution that sees only rows above and
    including its own). mask: optional static array of shape (kh, kw) or the kernel's, multiplied
    into the kernel (a PixelCNN mask); masked taps cost nothing on CPU. impl: 'auto' (im2col on
    CPU, lax.conv on GPU/TPU), 'im2col' or 'lax'.
    """

    features: int
    kernel_size: Sequence[int] = (3, 3)
    strides: Sequence[int] = (1, 1)
    padding: Padding = "SAME"
    mask: np.ndarray | None = None
    use_bias: bool = True
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros
    impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if len(tuple(self.kernel_size)) != 2:
            raise ValueError(f"Conv is 2D: kernel_size must be (kh, kw); got {self.kernel_size}")
        if x.ndim < 3:
            raise ValueError(f"Conv takes images (..., H, W, C); got an array of shape {x.shape}")
        if isinstance(self.strides, str) or len(tuple(self.strides)) != 2:
            raise ValueError(
                f"Conv strides must be (sh, sw); got {self.strides!r} (padding goes by keyword: padding=...)"
            )
        kh, kw = (int(k) for k in self.kernel_size)
        kernel = self.param("kernel", self.kernel_init, (kh, kw, x.shape[-1], self.features))
        batch = x.shape[:-3]  # any leading axes (none for one image), flattened into one batch axis
        y = conv2d(
            x.reshape((-1, *x.shape[-3:])), kernel, self.padding, self.mask, self.impl, tuple(self.strides)
        )
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,)).reshape(1, 1, 1, -1)
        return y.reshape(batch + y.shape[1:])


def space_to_depth(x: jax.Array, factor: int) -> jax.Array:
    """(B, H, W, C) -> (B, H / f, W / f, C f^2): each f x f patch becomes the channels of one pixel."""
    b, h, w, c = x.shape
    if h % factor or w % factor:
        raise ValueError(f"space_to_depth by {factor} needs height and width divisible by it; got {h}x{w}")
    x = x.reshape(b, h // factor, factor, w // factor, factor, c)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, h // factor, w // factor, factor * factor * c)


def depth_to_space(x: jax.Array, factor: int) -> jax.Array:
    """(B, H, W, C f^2) -> (B, H f, W f, C): sub-pixel upsampling (pixel shuffle), inverse of
    `space_to_depth`."""
    b, h, w, c = x.shape
    if c % (factor * factor):
        raise ValueError(f"depth_to_space by {factor} needs channels divisible by {factor * factor}; got {c}")
    out = c // (factor * factor)
    x = x.reshape(b, h, w, factor, factor, out)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, h * factor, w * factor, out)
