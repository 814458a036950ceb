"""gen_jax's four image families rebuilt layer for layer in PyTorch (runs in the peers' venv: imports
only torch and numpy, never gen_jax or jax).

    model = build("glow", num_levels=2, steps_per_level=4, hidden=32, num_blocks=1)
    model.load_flat(params, consts)      # gen_jax's parameters, flattened by path (see load_flat)
    loss = model.loss(x_uint8)           # scalar to minimise; x (B, 28, 28, 1) uint8, as gen_jax takes
    logp = model.log_prob(x_uint8)       # (B,) nats of the discrete 8-bit image (exact or a bound)

Every module takes the images as gen_jax does, uint8 (B, H, W, C), and views them as NCHW tensors with
channels_last strides (the same memory), so every flatten and reshape that gen_jax does on NHWC arrays
is a free view here and every parameter maps over with a transpose only. The same functions:

- `PixelCNN`: gated PixelCNN (vertical and horizontal stacks, 1x1 links, residual horizontal stack,
  ReLU head), the masked convolutions as their live taps only (the kernel parameter keeps gen_jax's full
  shape; the forward pass slices the rows or columns the mask keeps and pads asymmetrically, which is
  what gen_jax's im2col convolution computes), discretized logistic mixture per pixel.
- `VAE`: stride-2 encoder with residual convolutions, dense layers, decoder with pixel shuffle
  (PyTorch's `pixel_shuffle` channel order; `load_flat` permutes the up-convolutions' output channels
  into it), 5-component discretized logistic mixture decoder, ELBO with the KL in closed form.
- `Glow`: logit transform of dequantized data, squeeze in gen_jax's channel order, per step actnorm ->
  LU 1x1 convolution -> affine coupling (ResNet conditioner, soft-clamped log-scale, the conditioner's
  output interleaved (shift, log-scale) as gen_jax reshapes it), factor-out with the learned prior.
- `Diffusion`: gen_jax's U-Net on 2x2 patches (GroupNorm eps 1e-6 as Flax, SiLU, time embedding,
  strided down-convolution with lax's 'SAME' padding, single-head self-attention at the lowest
  resolution, nearest upsampling), VDM's continuous-time loss with the control variate and the
  discretized decoder; `log_prob` is the bound with `elbo_samples` stratified times per image.

Convolutions are `nn.Conv2d` (oneDNN on CPU); strided 'SAME' convolutions pad (0, 1) as XLA does
(PyTorch's symmetric padding=1 would shift the sampling grid by a pixel: a different function).
Parameters are initialised like Flax's defaults (LeCun normal, zero biases, zero where gen_jax zeroes);
the benchmark loads gen_jax's own initial parameters instead (`load_flat`), so both start identical.

`noise`: every `loss` and `log_prob` takes an optional dict of the random numbers it would draw (the
dequantization u, the VAE's eps, the diffusion times and noises), so that a test can feed the very
draws gen_jax made and compare the two libraries number for number.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_VALUES = 256
HALF_BIN = 1.0 / (NUM_VALUES - 1)
MIN_LOG_SCALE = -7.0
LOG_256 = math.log(256.0)
LOG_2PI = math.log(2.0 * math.pi)


# ----------------------------------------------------------------------------- shared pieces


def to_nchw(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) images (any dtype) -> float32 (B, C, H, W) with channels_last strides (a view)."""
    return x.permute(0, 3, 1, 2).to(torch.float32)


def lecun_normal_(w: torch.Tensor, fan_in: int) -> torch.Tensor:
    """Flax's default kernel init: truncated normal (+-2 std) with variance 1 / fan_in."""
    std = math.sqrt(1.0 / fan_in) / 0.87962566103423978
    with torch.no_grad():
        return nn.init.trunc_normal_(w, std=std, a=-2 * std, b=2 * std)


def _init_conv(conv: nn.Conv2d, zero: bool = False) -> None:
    with torch.no_grad():
        if zero:
            conv.weight.zero_()
        else:
            lecun_normal_(conv.weight, conv.weight[0].numel())
        if conv.bias is not None:
            conv.bias.zero_()


def _init_linear(lin: nn.Linear, zero: bool = False) -> None:
    with torch.no_grad():
        if zero:
            lin.weight.zero_()
        else:
            lecun_normal_(lin.weight, lin.weight.shape[1])
        lin.bias.zero_()


class Conv(nn.Conv2d):
    """Flax `Conv` with 'SAME' padding: symmetric for stride 1 (odd kernels), lax's (lo, hi) split for
    strides > 1 (for 28 -> 14 with a 3x3 kernel: 0 before, 1 after)."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, zero: bool = False):
        if k % 2 == 0:
            raise ValueError(f"odd kernel sizes only, got {k}")
        super().__init__(cin, cout, k, stride=stride, padding=k // 2 if stride == 1 else 0)
        _init_conv(self, zero)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, k = self.stride[0], self.kernel_size[0]
        if s > 1:
            pads = []
            for n in (x.shape[-1], x.shape[-2]):  # F.pad order: last dimension first
                total = max((-(-n // s) - 1) * s + k - n, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        return super().forward(x)


def conv1x1(cin: int, cout: int, zero: bool = False) -> nn.Conv2d:
    """A Flax `Dense` on the channel axis of an image."""
    conv = nn.Conv2d(cin, cout, 1)
    _init_conv(conv, zero)
    return conv


def linear(n_in: int, n_out: int, zero: bool = False) -> nn.Linear:
    lin = nn.Linear(n_in, n_out)
    _init_linear(lin, zero)
    return lin


def mixture_log_prob(params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log P(x) per pixel under a discretized logistic mixture (gen_jax.likelihood.discretized).

    params (B, 3K, H, W): logits, means, log-scales; x (B, 1, H, W) float pixel values 0..255.
    Returns (B, H, W)."""
    k = params.shape[1] // 3
    logits, means = params[:, :k], params[:, k : 2 * k]
    log_scales = params[:, 2 * k :].clamp(min=MIN_LOG_SCALE)
    c = 2.0 * x / (NUM_VALUES - 1) - 1.0
    inv_s = torch.exp(-log_scales)
    a = (c - HALF_BIN - means) * inv_s
    b = (c + HALF_BIN - means) * inv_s
    log_b, log_not_a = F.logsigmoid(b), F.logsigmoid(-a)
    interior = log_b + log_not_a + torch.log(-torch.expm1(a - b))
    xi = torch.round(x)
    comp = torch.where(xi <= 0, log_b, torch.where(xi >= NUM_VALUES - 1, log_not_a, interior))
    return torch.logsumexp(torch.log_softmax(logits, dim=1) + comp, dim=1)


def _noise(noise: dict | None, name: str, fn, images: bool = False) -> torch.Tensor:
    """noise[name] as a float32 tensor when given (a test's fixed draws: images as gen_jax draws them,
    (..., H, W, C), moved to (..., C, H, W) when `images`), else fn()."""
    if noise is None or name not in noise:
        return fn()
    v = torch.as_tensor(np.asarray(noise[name]), dtype=torch.float32)
    return v.movedim(-1, -3) if images else v


def _copy(param: torch.Tensor, value, what: str) -> None:
    value = torch.as_tensor(np.ascontiguousarray(np.asarray(value, np.float32)))
    if tuple(value.shape) != tuple(param.shape):
        raise ValueError(f"{what}: gen_jax shape {tuple(value.shape)} != torch shape {tuple(param.shape)}")
    with torch.no_grad():
        param.copy_(value)


def _load_conv(conv: nn.Conv2d, p: dict, what: str, out_perm: np.ndarray | None = None) -> None:
    """A Flax Conv's kernel (kh, kw, in, out) and bias, or a Dense's kernel (in, out) as a 1x1 conv."""
    k = np.asarray(p["kernel"])
    w = k.T[:, :, None, None] if k.ndim == 2 else k.transpose(3, 2, 0, 1)
    b = np.asarray(p["bias"])
    if out_perm is not None:
        w, b = w[out_perm], b[out_perm]
    _copy(conv.weight, w, what + "/kernel")
    _copy(conv.bias, b, what + "/bias")


def _load_linear(lin: nn.Linear, p: dict, what: str) -> None:
    k = np.asarray(p["kernel"])
    _copy(lin.weight, k.reshape(-1, k.shape[-1]).T if k.ndim == 3 else k.T, what + "/kernel")
    _copy(lin.bias, np.asarray(p["bias"]).reshape(-1), what + "/bias")


def nest(flat: dict) -> dict:
    """{"a/b/c": array} -> {"a": {"b": {"c": array}}}."""
    out: dict = {}
    for path, v in flat.items():
        node = out
        *head, last = path.split("/")
        for part in head:
            node = node.setdefault(part, {})
        node[last] = v
    return out


class ImageModel(nn.Module):
    """The common surface: loss(x, noise) -> scalar, log_prob(x, noise) -> (B,), load_flat(params)."""

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def loss(self, x: torch.Tensor, noise: dict | None = None) -> torch.Tensor:
        return -self.log_prob(x, noise).mean()

    def load_flat(self, params: dict, consts: dict | None = None) -> None:
        """Load gen_jax's parameters, {"path/to/leaf": array} as `jax.tree_util` paths name them."""
        self.load_tree(nest(params), nest(consts or {}))


# ----------------------------------------------------------------------------- PixelCNN


class MaskedConv(nn.Module):
    """A masked 'SAME' convolution whose mask keeps the contiguous block `rows` x `cols` of the kernel:
    the weight keeps the kernel's full shape (gen_jax's parameter), the forward pass convolves with the
    live block only, padded so that every output sees exactly the taps the mask keeps."""

    def __init__(self, cin: int, cout: int, kh: int, kw: int, rows: tuple[int, int], cols: tuple[int, int]):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cout, cin, kh, kw))
        self.bias = nn.Parameter(torch.zeros(cout))
        lecun_normal_(self.weight, cin * kh * kw)
        self.rows, self.cols = rows, cols
        top, left = (kh - 1) // 2, (kw - 1) // 2
        (r0, r1), (c0, c1) = rows, cols
        self.pad = (left - c0, c1 - 1 - left, top - r0, r1 - 1 - top)  # may crop (negative)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (r0, r1), (c0, c1) = self.rows, self.cols
        return F.conv2d(F.pad(x, self.pad), self.weight[:, :, r0:r1, c0:c1], self.bias)


def _gate(h: torch.Tensor) -> torch.Tensor:
    a, b = h.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class PixelCNN(ImageModel):
    def __init__(
        self,
        event_shape=(28, 28, 1),
        channels: int = 64,
        num_layers: int = 8,
        first_kernel: int = 7,
        kernel: int = 3,
        head_hidden: int = 128,
        num_mixtures: int = 5,
        output: str = "logistic_mixture",
    ):
        super().__init__()
        if output != "logistic_mixture" or tuple(event_shape)[-1] != 1:
            raise ValueError("the torch PixelCNN is the grey-scale logistic-mixture one")
        c, c2 = channels, 2 * channels
        ks = [first_kernel] + [kernel] * (num_layers - 1)
        self.v_convs = nn.ModuleList(
            MaskedConv(1 if i == 0 else c, c2, k, k, (0, k // 2 + (0 if i == 0 else 1)), (0, k))
            for i, k in enumerate(ks)
        )
        self.h_convs = nn.ModuleList(
            MaskedConv(1 if i == 0 else c, c2, 1, k, (0, 1), (0, k // 2 + (0 if i == 0 else 1)))
            for i, k in enumerate(ks)
        )
        self.links = nn.ModuleList(conv1x1(c, c2) for _ in ks)
        self.h_outs = nn.ModuleList(conv1x1(c, c) for _ in ks[1:])
        self.head_hidden_layer = conv1x1(c, head_hidden)
        self.head_out = conv1x1(head_hidden, 3 * num_mixtures, zero=True)

    def network(self, x_unit: torch.Tensor) -> torch.Tensor:
        links, v = [], x_unit
        for conv, link in zip(self.v_convs, self.links, strict=True):
            v = _gate(conv(v))
            links.append(link(v))
        h = _gate(self.h_convs[0](x_unit) + links[0])
        for conv, link, out in zip(self.h_convs[1:], links[1:], self.h_outs, strict=True):
            h = h + out(_gate(conv(h) + link))
        return self.head_out(F.relu(self.head_hidden_layer(F.relu(h))))

    def log_prob(self, x: torch.Tensor, noise: dict | None = None) -> torch.Tensor:
        xf = to_nchw(x)
        out = self.network(xf / 127.5 - 1.0)
        return mixture_log_prob(out, xf).sum(dim=(1, 2))

    def load_tree(self, p: dict, consts: dict) -> None:
        p = p["params"]
        for group in ("v_convs", "h_convs", "links", "h_outs"):
            for i, mod in enumerate(getattr(self, group)):
                _load_conv(mod, p[f"{group}_{i}"], f"{group}_{i}")
        _load_conv(self.head_hidden_layer, p["head_hidden_layer"], "head_hidden_layer")
        _load_conv(self.head_out, p["head_out"], "head_out")


# ----------------------------------------------------------------------------- VAE


def _shuffle_perm(out: int, f: int = 2) -> np.ndarray:
    """torch channel t of a conv feeding `pixel_shuffle` <- gen_jax channel g of `depth_to_space`:
    torch orders (o, i, j), gen_jax (i, j, o)."""
    perm = np.empty(out * f * f, np.int64)
    for t in range(out * f * f):
        o, r = divmod(t, f * f)
        i, j = divmod(r, f)
        perm[t] = (i * f + j) * out + o
    return perm


class VAE(ImageModel):
    def __init__(
        self,
        event_shape=(28, 28, 1),
        latent_dim: int = 32,
        encoder_channels=(32, 64),
        decoder_channels=(64, 32),
        dense_width: int = 256,
        num_mixtures: int = 5,
        likelihood: str = "logistic_mixture",
        activation: str = "silu",
        hidden: int | None = None,  # gen_jax's earlier name of dense_width
    ):
        super().__init__()
        hidden = dense_width if hidden is None else hidden
        if likelihood != "logistic_mixture" or activation != "silu" or tuple(event_shape)[-1] != 1:
            raise ValueError("the torch VAE is the grey-scale logistic-mixture one with SiLU")
        height, width, _ = event_shape
        self.latent_dim, self.per_pixel = latent_dim, 3 * num_mixtures
        enc, cin = [], 1
        for c in encoder_channels:
            enc += [Conv(cin, c, 3, stride=2), Conv(c, c, 3)]
            cin = c
        self.enc_convs = nn.ModuleList(enc)
        fe = 2 ** len(encoder_channels)
        self.enc_dense0 = linear((height // fe) * (width // fe) * cin, hidden)
        self.enc_dense1 = linear(hidden, 2 * latent_dim, zero=True)
        fd = 2 ** len(decoder_channels)
        self.map_shape = (height // fd, width // fd, decoder_channels[0])
        self.dec_dense0 = linear(latent_dim, hidden)
        self.dec_dense1 = linear(hidden, math.prod(self.map_shape))
        dec, self.up_outs = [], []
        for i, c in enumerate(decoder_channels):
            nxt = self.per_pixel if i == len(decoder_channels) - 1 else decoder_channels[i + 1]
            dec += [Conv(c, c, 3), Conv(c, 4 * nxt, 3)]
            self.up_outs.append(nxt)
        self.dec_convs = nn.ModuleList(dec)

    def encode(self, x_unit: torch.Tensor):
        h = x_unit
        for i in range(0, len(self.enc_convs), 2):
            h = F.silu(self.enc_convs[i](h))
            h = h + F.silu(self.enc_convs[i + 1](h))
        h = h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)  # gen_jax's NHWC flatten (a view here)
        out = self.enc_dense1(F.silu(self.enc_dense0(h)))
        return out[:, : self.latent_dim], out[:, self.latent_dim :]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.dec_dense1(F.silu(self.dec_dense0(z))))
        h = h.view(z.shape[0], *self.map_shape).permute(0, 3, 1, 2)  # NHWC memory, NCHW view
        n = len(self.dec_convs) // 2
        for i in range(n):
            h = h + F.silu(self.dec_convs[2 * i](h))
            h = F.pixel_shuffle(self.dec_convs[2 * i + 1](h), 2)
            if i < n - 1:
                h = F.silu(h)
        return h  # (B, 3K, H, W)

    def elbo(self, x: torch.Tensor, noise: dict | None = None):
        xf = to_nchw(x)
        mean, log_scale = self.encode(2.0 * xf / (NUM_VALUES - 1) - 1.0)
        eps = _noise(noise, "eps", lambda: torch.randn_like(mean))
        z = mean + torch.exp(log_scale) * eps
        rec = mixture_log_prob(self.decode(z), xf).sum(dim=(1, 2))
        kl = 0.5 * torch.sum(mean.square() + torch.exp(2.0 * log_scale) - 1.0 - 2.0 * log_scale, dim=-1)
        return rec - kl

    def log_prob(self, x: torch.Tensor, noise: dict | None = None) -> torch.Tensor:
        return self.elbo(x, noise)

    def load_tree(self, p: dict, consts: dict) -> None:
        for i, conv in enumerate(self.enc_convs):
            _load_conv(conv, p["encoder"][f"Conv_{i}"], f"encoder/Conv_{i}")
        _load_linear(self.enc_dense0, p["encoder"]["Dense_0"], "encoder/Dense_0")
        _load_linear(self.enc_dense1, p["encoder"]["Dense_1"], "encoder/Dense_1")
        _load_linear(self.dec_dense0, p["decoder"]["Dense_0"], "decoder/Dense_0")
        _load_linear(self.dec_dense1, p["decoder"]["Dense_1"], "decoder/Dense_1")
        for i, conv in enumerate(self.dec_convs):
            perm = _shuffle_perm(self.up_outs[i // 2]) if i % 2 else None
            _load_conv(conv, p["decoder"][f"Conv_{i}"], f"decoder/Conv_{i}", out_perm=perm)


# ----------------------------------------------------------------------------- Glow


class ResNetConditioner(nn.Module):
    """gen_jax.nn.resnet.ResNetConditioner: conv in, blocks h + Dense(relu(Conv(relu(h)))), zero conv out."""

    def __init__(self, cin: int, hidden: int, out: int, num_blocks: int = 1, block_kernel: int = 3):
        super().__init__()
        self.conv_in = Conv(cin, hidden, 3)
        self.block_convs = nn.ModuleList(Conv(hidden, hidden, block_kernel) for _ in range(num_blocks))
        self.block_denses = nn.ModuleList(conv1x1(hidden, hidden) for _ in range(num_blocks))
        self.conv_out = Conv(hidden, out, 3, zero=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for conv, dense in zip(self.block_convs, self.block_denses, strict=True):
            h = h + dense(F.relu(conv(F.relu(h))))
        return self.conv_out(F.relu(h))

    def load_stacked(self, p: dict, k: int, what: str) -> None:
        """Step k's slice of gen_jax's stacked (vmapped) conditioner parameters."""
        take = lambda q: {name: np.asarray(v)[k] for name, v in q.items()}
        n = len(self.block_convs)
        _load_conv(self.conv_in, take(p["Conv_0"]), f"{what}/Conv_0")
        for b in range(n):
            _load_conv(self.block_convs[b], take(p[f"Conv_{b + 1}"]), f"{what}/Conv_{b + 1}")
            _load_conv(self.block_denses[b], take(p[f"Dense_{b}"]), f"{what}/Dense_{b}")
        _load_conv(self.conv_out, take(p[f"Conv_{n + 1}"]), f"{what}/Conv_{n + 1}")


def affine_coupling(v: torch.Tensor, net: nn.Module, keep: int, max_log_scale: float):
    """The first `keep` channels condition the rest: y2 = x2 exp(s) + t, (t, s) interleaved per channel
    as gen_jax reshapes the conditioner's output to (..., C - keep, 2); s soft-clamped."""
    x1, x2 = v[:, :keep], v[:, keep:]
    p = net(x1)
    shift, raw = p[:, 0::2], p[:, 1::2]
    log_scale = max_log_scale * torch.tanh(raw / max_log_scale)
    return torch.cat([x1, x2 * torch.exp(log_scale) + shift], dim=1), log_scale.sum(dim=(1, 2, 3))


def squeeze2(v: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 4C, H/2, W/2), channel (i * 2 + j) * C + c as gen_jax's Squeeze (on NHWC)."""
    b, c, h, w = v.shape
    x = v.permute(0, 2, 3, 1).reshape(b, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h // 2, w // 2, 4 * c).permute(0, 3, 1, 2)


class FlowStep(nn.Module):
    """actnorm -> invertible 1x1 convolution (LU) -> affine coupling, normalizing direction."""

    def __init__(self, c: int, hidden: int, num_blocks: int, block_kernel: int, max_log_scale: float):
        super().__init__()
        self.keep, self.max_log_scale = c // 2, max_log_scale
        self.an_bias = nn.Parameter(torch.zeros(c))
        self.an_log_scale = nn.Parameter(torch.zeros(c))
        q, _ = torch.linalg.qr(torch.randn(c, c))
        perm, lower, upper = torch.linalg.lu(q)
        s = torch.diagonal(upper)
        self.lower = nn.Parameter(torch.tril(lower, -1))
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(torch.log(s.abs()))
        self.register_buffer("perm", perm.clone())
        self.register_buffer("sign", torch.sign(s))
        self.register_buffer("eye", torch.eye(c))
        self.net = ResNetConditioner(self.keep, hidden, 2 * (c - self.keep), num_blocks, block_kernel)

    def weight(self) -> torch.Tensor:
        lower = torch.tril(self.lower, -1) + self.eye
        upper = torch.triu(self.upper, 1) + torch.diag(self.sign * torch.exp(self.log_s))
        return self.perm @ lower @ upper

    def forward(self, v: torch.Tensor, log_det: torch.Tensor):
        hw = v.shape[2] * v.shape[3]
        v = (v + self.an_bias.view(1, -1, 1, 1)) * torch.exp(self.an_log_scale).view(1, -1, 1, 1)
        v = F.conv2d(v, self.weight()[:, :, None, None])
        v, ld = affine_coupling(v, self.net, self.keep, self.max_log_scale)
        return v, log_det + hw * (self.an_log_scale.sum() + self.log_s.sum()) + ld


class Glow(ImageModel):
    def __init__(
        self,
        event_shape=(28, 28, 1),
        num_levels: int = 2,
        steps_per_level: int = 8,
        channels: int = 64,
        num_blocks: int = 1,
        block_kernel: int = 3,
        learn_prior: bool = True,
        alpha: float = 0.05,
        max_log_scale: float = 3.0,
        hidden: int | None = None,  # gen_jax's earlier name of channels (the conditioners' width)
    ):
        super().__init__()
        hidden = channels if hidden is None else hidden
        h, w, c = event_shape
        self.num_dims = h * w * c
        self.alpha, self.max_log_scale, self.learn_prior = alpha, max_log_scale, learn_prior
        self.shapes = []
        for _ in range(num_levels):
            h, w, c = h // 2, w // 2, 4 * c
            self.shapes.append((h, w, c))
            c //= 2
        self.levels = nn.ModuleList()
        for level, (_, _, c) in enumerate(self.shapes):
            mod = nn.Module()
            mod.steps = nn.ModuleList(
                FlowStep(c, hidden, num_blocks, block_kernel, max_log_scale) for _ in range(steps_per_level)
            )
            if learn_prior and level < num_levels - 1:
                mod.prior = Conv(c // 2, 2 * (c - c // 2), 3, zero=True)
            elif learn_prior:
                mod.prior_bias = nn.Parameter(torch.zeros(c))
                mod.prior_log_scale = nn.Parameter(torch.zeros(c))
            self.levels.append(mod)

    def log_prob(self, x: torch.Tensor, noise: dict | None = None) -> torch.Tensor:
        xf = to_nchw(x)
        u = _noise(noise, "u", lambda: torch.rand_like(xf), images=True)
        y = (xf + u) / 256.0
        s = self.alpha + (1.0 - 2.0 * self.alpha) * y
        log_s, log_1ms = torch.log(s), torch.log1p(-s)
        v = log_s - log_1ms
        log_det = (math.log(1.0 - 2.0 * self.alpha) - log_s - log_1ms).sum(dim=(1, 2, 3))
        sq = torch.zeros_like(log_det)
        last = len(self.levels) - 1
        for level, mod in enumerate(self.levels):
            v = squeeze2(v)
            for step in mod.steps:
                v, log_det = step(v, log_det)
            keep = v.shape[1] // 2
            if level < last:
                if self.learn_prior:
                    v, ld = affine_coupling(v, mod.prior, keep, self.max_log_scale)
                    log_det = log_det + ld
                sq = sq + v[:, keep:].square().sum(dim=(1, 2, 3))
                v = v[:, :keep]
            else:
                if self.learn_prior:
                    v = (v + mod.prior_bias.view(1, -1, 1, 1)) * torch.exp(mod.prior_log_scale).view(
                        1, -1, 1, 1
                    )
                    log_det = log_det + v.shape[2] * v.shape[3] * mod.prior_log_scale.sum()
                sq = sq + v.square().sum(dim=(1, 2, 3))
        base = -0.5 * sq - 0.5 * self.num_dims * LOG_2PI
        return base + log_det - self.num_dims * LOG_256

    def load_tree(self, p: dict, consts: dict) -> None:
        last = len(self.levels) - 1
        for level, mod in enumerate(self.levels):
            lp = p["levels"][str(level)]
            st = lp["steps"]
            const = consts.get("levels", {}).get(str(level))
            for k, step in enumerate(mod.steps):
                what = f"levels/{level}/steps"
                _copy(step.an_bias, np.asarray(st["actnorm"]["bias"])[k], f"{what}/actnorm/bias")
                _copy(
                    step.an_log_scale, np.asarray(st["actnorm"]["log_scale"])[k], f"{what}/actnorm/log_scale"
                )
                for name in ("lower", "upper", "log_s"):
                    _copy(getattr(step, name), np.asarray(st["conv"][name])[k], f"{what}/conv/{name}")
                if const is not None:  # the fixed permutation and signs of gen_jax's 1x1 convolutions
                    _copy(step.perm, np.asarray(const["perm"])[k], f"{what}/perm")
                    _copy(step.sign, np.asarray(const["sign"])[k], f"{what}/sign")
                step.net.load_stacked(st["coupling"], k, f"{what}/coupling")
            if self.learn_prior and level < last:
                _load_conv(mod.prior, lp["prior"], f"levels/{level}/prior")
            elif self.learn_prior:
                _copy(mod.prior_bias, lp["prior"]["bias"], f"levels/{level}/prior/bias")
                _copy(mod.prior_log_scale, lp["prior"]["log_scale"], f"levels/{level}/prior/log_scale")


# ----------------------------------------------------------------------------- diffusion U-Net


def _groups(channels: int, max_groups: int) -> int:
    g = min(max_groups, channels)
    while channels % g:
        g -= 1
    return g


def group_norm(c: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(_groups(c, groups), c, eps=1e-6)  # Flax's GroupNorm epsilon


def _load_norm(gn: nn.GroupNorm, p: dict, what: str) -> None:
    _copy(gn.weight, p["scale"], what + "/scale")
    _copy(gn.bias, p["bias"], what + "/bias")


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb_dim: int, groups: int = 8):
        super().__init__()
        self.norm0, self.conv0 = group_norm(cin, groups), Conv(cin, cout, 3)
        self.dense = linear(emb_dim, cout)
        self.norm1, self.conv1 = group_norm(cout, groups), Conv(cout, cout, 3, zero=True)
        self.skip = conv1x1(cin, cout) if cin != cout else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv0(F.silu(self.norm0(x)))
        h = h + self.dense(emb)[:, :, None, None]
        h = self.conv1(F.silu(self.norm1(h)))
        return (x if self.skip is None else self.skip(x)) + h

    def load(self, p: dict, what: str) -> None:
        _load_norm(self.norm0, p["GroupNorm_0"], what + "/GroupNorm_0")
        _load_conv(self.conv0, p["Conv_0"], what + "/Conv_0")
        _load_linear(self.dense, p["Dense_0"], what + "/Dense_0")
        _load_norm(self.norm1, p["GroupNorm_1"], what + "/GroupNorm_1")
        _load_conv(self.conv1, p["Conv_1"], what + "/Conv_1")
        if self.skip is not None:
            _load_conv(self.skip, p["skip"], what + "/skip")


class SelfAttention(nn.Module):
    """Flax MultiHeadDotProductAttention(num_heads=1) after a GroupNorm, residual; zero-init output."""

    def __init__(self, c: int, groups: int = 8):
        super().__init__()
        self.norm = group_norm(c, groups)
        self.query, self.key, self.value = linear(c, c), linear(c, c), linear(c, c)
        self.out = linear(c, c, zero=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, hgt, wid = x.shape
        h = self.norm(x).permute(0, 2, 3, 1).reshape(b, 1, hgt * wid, c)
        h = F.scaled_dot_product_attention(self.query(h), self.key(h), self.value(h))
        return x + self.out(h).reshape(b, hgt, wid, c).permute(0, 3, 1, 2)

    def load(self, p: dict, what: str) -> None:
        _load_norm(self.norm, p["GroupNorm_0"], what + "/GroupNorm_0")
        att = p["MultiHeadDotProductAttention_0"]
        for name in ("query", "key", "value", "out"):
            _load_linear(getattr(self, name), att[name], f"{what}/{name}")


def sinusoidal_embedding(t: torch.Tensor, dim: int, scale: float, max_period: float = 10_000.0):
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / max(half - 1, 1))
    angles = scale * t[:, None] * freqs[None]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


class UNet(nn.Module):
    """gen_jax.nn.unet.UNet: (x (B, C, H, W), c (B,)) -> (B, out, H, W); ResBlocks kept in Flax's
    creation order (ResBlock_0, _1, ...) so that parameters map by name."""

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        channels=(32, 64, 64),
        num_res_blocks: int = 1,
        embed_dim: int = 64,
        embed_scale: float = 1000.0,
        attention: bool = True,
        groups: int = 8,
        patch: int = 1,
    ):
        super().__init__()
        if patch > 1 and (in_channels != 1 or out_channels != 1):
            raise ValueError("patches via pixel_(un)shuffle: gen_jax's channel order only agrees for C = 1")
        self.channels, self.num_res_blocks, self.patch = tuple(channels), num_res_blocks, patch
        self.embed_dim, self.embed_scale = embed_dim, embed_scale
        e4 = 4 * embed_dim
        self.emb_in, self.emb_out = linear(embed_dim, e4), linear(e4, e4)  # Flax's Dense_1, Dense_0
        self.conv_in = Conv(in_channels * patch**2, self.channels[0], 3)
        blocks, h_ch, skips = [], self.channels[0], [self.channels[0]]
        self.downs = nn.ModuleList()
        for level, ch in enumerate(self.channels):
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(h_ch, ch, e4, groups))
                h_ch = ch
                skips.append(ch)
            if level < len(self.channels) - 1:
                self.downs.append(Conv(ch, ch, 3, stride=2))
                skips.append(ch)
        blocks.append(ResBlock(h_ch, self.channels[-1], e4, groups))
        h_ch = self.channels[-1]
        self.attention = SelfAttention(h_ch, groups) if attention else None
        blocks.append(ResBlock(h_ch, h_ch, e4, groups))
        self.ups = nn.ModuleDict()
        for level in reversed(range(len(self.channels))):
            ch = self.channels[level]
            for _ in range(num_res_blocks + 1):
                blocks.append(ResBlock(h_ch + skips.pop(), ch, e4, groups))
                h_ch = ch
            if level > 0:
                self.ups[str(level)] = Conv(ch, ch, 3)
        self.blocks = nn.ModuleList(blocks)
        self.norm_out = group_norm(h_ch, groups)
        self.conv_out = Conv(h_ch, out_channels * patch**2, 3, zero=True)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        if self.patch > 1:
            x = F.pixel_unshuffle(x, self.patch)
        emb = sinusoidal_embedding(c, self.embed_dim, self.embed_scale)
        emb = self.emb_out(F.silu(self.emb_in(emb)))
        blocks = iter(self.blocks)
        h = self.conv_in(x)
        skips = [h]
        levels = len(self.channels)
        for level in range(levels):
            for _ in range(self.num_res_blocks):
                h = next(blocks)(h, emb)
                skips.append(h)
            if level < levels - 1:
                h = self.downs[level](h)
                skips.append(h)
        h = next(blocks)(h, emb)
        if self.attention is not None:
            h = self.attention(h)
        h = next(blocks)(h, emb)
        for level in reversed(range(levels)):
            for _ in range(self.num_res_blocks + 1):
                h = next(blocks)(torch.cat([h, skips.pop()], dim=1), emb)
            if level > 0:
                h = self.ups[str(level)](F.interpolate(h, scale_factor=2, mode="nearest"))
        h = self.conv_out(F.silu(self.norm_out(h)))
        return F.pixel_shuffle(h, self.patch) if self.patch > 1 else h

    def load(self, p: dict) -> None:
        _load_linear(self.emb_in, p["Dense_1"], "net/Dense_1")
        _load_linear(self.emb_out, p["Dense_0"], "net/Dense_0")
        _load_conv(self.conv_in, p["conv_in"], "net/conv_in")
        for i, block in enumerate(self.blocks):
            block.load(p[f"ResBlock_{i}"], f"net/ResBlock_{i}")
        for level, conv in enumerate(self.downs):
            _load_conv(conv, p[f"down{level}"], f"net/down{level}")
        for level, conv in self.ups.items():
            _load_conv(conv, p[f"up{level}"], f"net/up{level}")
        if self.attention is not None:
            self.attention.load(p["SelfAttention_0"], "net/SelfAttention_0")
        _load_norm(self.norm_out, p["GroupNorm_0"], "net/GroupNorm_0")
        _load_conv(self.conv_out, p["conv_out"], "net/conv_out")


class Diffusion(ImageModel):
    """VDM-style continuous-time VP diffusion on 8-bit images with the linear log-SNR schedule."""

    def __init__(
        self,
        event_shape=(28, 28, 1),
        data: str = "8bit",
        schedule: str = "linear",
        loss: str = "elbo",
        gamma_min: float = -10.0,
        gamma_max: float = 7.0,
        embed_dim: int = 64,
        embed_scale: float = 20.0,
        unet_channels=(32, 64, 64),
        unet_attention: bool = True,
        unet_patch: int = 1,
        unet_res_blocks: int = 1,
        elbo_samples: int = 64,
    ):
        super().__init__()
        if data != "8bit" or schedule != "linear" or loss != "elbo":
            raise ValueError("the torch diffusion model is the 8-bit, linear-schedule, ELBO-loss one")
        h, w, c = event_shape
        self.event_shape, self.num_dims = (h, w, c), h * w * c
        self.gamma_min, self.gamma_max, self.elbo_samples = gamma_min, gamma_max, elbo_samples
        self.net = UNet(
            c, c, unet_channels, unet_res_blocks, embed_dim, embed_scale, unet_attention, patch=unet_patch
        )
        self.register_buffer("centres", (2.0 * (torch.arange(NUM_VALUES) + 0.5) / NUM_VALUES - 1.0))

    def gamma(self, t: torch.Tensor) -> torch.Tensor:
        return self.gamma_min + (self.gamma_max - self.gamma_min) * t

    def noise_mse(self, xe: torch.Tensor, g: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """||eps - eps_hat(alpha x + sigma eps, gamma)||^2 per example; g (N,), xe and eps (N, C, H, W)."""
        a = torch.sqrt(torch.sigmoid(-g)).view(-1, 1, 1, 1)
        s = torch.sqrt(torch.sigmoid(g)).view(-1, 1, 1, 1)
        c = (g - self.gamma_min) / (self.gamma_max - self.gamma_min)
        return (eps - self.net(a * xe + s * eps, c)).square().sum(dim=(1, 2, 3))

    def diffusion_term(self, xe, g, eps):
        """1/2 gamma' (||eps - eps_hat||^2 - alpha^4 (||eps||^2 - D)): gen_jax's controlled estimate."""
        cv = torch.sigmoid(-g).square() * (eps.square().sum(dim=(1, 2, 3)) - self.num_dims)
        return 0.5 * (self.gamma_max - self.gamma_min) * (self.noise_mse(xe, g, eps) - cv)

    def prior_term(self, xe: torch.Tensor) -> torch.Tensor:
        g1 = torch.tensor(self.gamma_max)
        inner = torch.sigmoid(-g1) * xe.square() + torch.sigmoid(g1) - F.logsigmoid(g1) - 1.0
        return 0.5 * inner.sum(dim=(1, 2, 3))

    def recon_term(self, xf: torch.Tensor, xe: torch.Tensor, eps0: torch.Tensor) -> torch.Tensor:
        """log P(x | z_0) with z_0 = alpha_0 x + sigma_0 eps0: per pixel a 256-way categorical."""
        g0 = torch.tensor(self.gamma_min)
        alpha0, sigma0 = torch.sqrt(torch.sigmoid(-g0)), torch.sqrt(torch.sigmoid(g0))
        z0 = alpha0 * xe + sigma0 * eps0
        logits = -0.5 * torch.exp(-g0) * ((z0 / alpha0)[..., None] - self.centres).square()
        idx = torch.round(xf).clamp(0, NUM_VALUES - 1).long()[..., None]
        return torch.gather(torch.log_softmax(logits, dim=-1), -1, idx)[..., 0].sum(dim=(1, 2, 3))

    def loss(self, x: torch.Tensor, noise: dict | None = None) -> torch.Tensor:
        xf = to_nchw(x)
        b = xf.shape[0]
        u = _noise(noise, "t0", lambda: torch.rand(()))
        t = torch.remainder(u + torch.arange(b, dtype=torch.float32) / b, 1.0)  # antithetic times
        eps = _noise(noise, "eps", lambda: torch.randn_like(xf), images=True)
        eps0 = _noise(noise, "eps0", lambda: torch.randn_like(xf), images=True)
        xe = 2.0 * (torch.round(xf) + 0.5) / NUM_VALUES - 1.0
        diff = self.diffusion_term(xe, self.gamma(t), eps)
        return (self.prior_term(xe) + diff - self.recon_term(xf, xe, eps0)).mean()

    def log_prob(self, x: torch.Tensor, noise: dict | None = None) -> torch.Tensor:
        """The bound: `elbo_samples` stratified times per image, each with its own noise."""
        xf = to_nchw(x)
        b, k = xf.shape[0], self.elbo_samples
        u = _noise(noise, "u", lambda: torch.rand(b))
        t = (torch.arange(k, dtype=torch.float32)[None] + u[:, None]) / k  # (B, k)
        eps = _noise(noise, "eps", lambda: torch.randn(b, k, *xf.shape[1:]), images=True)
        eps0 = _noise(noise, "eps0", lambda: torch.randn_like(xf), images=True)
        xe = 2.0 * (torch.round(xf) + 0.5) / NUM_VALUES - 1.0
        xk = xe[:, None].expand(b, k, *xe.shape[1:]).reshape(b * k, *xe.shape[1:])
        xk = xk.contiguous(memory_format=torch.channels_last)
        eps = eps.reshape(b * k, *xe.shape[1:]).contiguous(memory_format=torch.channels_last)
        diff = self.diffusion_term(xk, self.gamma(t.reshape(-1)), eps).view(b, k).mean(dim=1)
        return self.recon_term(xf, xe, eps0) - self.prior_term(xe) - diff

    def load_tree(self, p: dict, consts: dict) -> None:
        self.net.load(p["net"])


# ----------------------------------------------------------------------------- by name

MODELS = {"pixelcnn": PixelCNN, "vae": VAE, "glow": Glow, "diffusion": Diffusion}


def build(model: str, event_shape=(28, 28, 1), **kwargs) -> ImageModel:
    """The torch twin of `gen_jax.models.make_model(model, event_shape, **kwargs)`."""
    try:
        cls = MODELS[model]
    except KeyError:
        raise ValueError(f"no torch twin of {model!r}; available: {', '.join(MODELS)}") from None
    return cls(tuple(event_shape), **kwargs)
