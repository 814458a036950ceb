"""Variational autoencoders on 8-bit (or binarized) images, and their three likelihoods.

    model = make_model("vae", (28, 28, 1))           # discretized logistic mixture decoder
    model = make_model("vae_bin", (28, 28, 1))       # Bernoulli decoder on binarized images

Prior p(z) = N(0, I), Gaussian posterior q(z | x) = N(m(x), diag s(x)^2) from a convolutional
encoder, and a convolutional decoder p(x | z) that factorizes over pixels:
- "logistic_mixture": per pixel a K-component discretized logistic mixture over the 256 values
  (`gen_jax.likelihood.discretized`), so log p(x) is the log-mass of the discrete 8-bit image and
  bits/dim follow directly, with no dequantization offset;
- "bernoulli": per pixel a Bernoulli on binarized images; both the loss and log_prob binarize
  with `binarize(x, key)` (dynamic binarization), so data already binarized to {0, 255} is scored
  deterministically.

Three ways to get log p(x) from the same parameters (each a row of the experiments):
- `log_prob`: the ELBO, E_q[log p(x | z)] - KL(q || p) with the KL in closed form and one sample
  of z (`Kind.LOWER_BOUND`, what training maximizes);
- `estimators["iwae"]`: log (1/k) sum_j p(x, z_j) / q(z_j | x), z_j ~ q (Burda et al. 2016): a
  lower bound in expectation that tightens as k grows (`Kind.ESTIMATE`, k = `num_samples`);
- `estimators["prior"]`: log (1/k) sum_j p(x | z_j), z_j ~ p(z): unbiased for p(x) but, in
  784 dimensions, its log is far below log p(x) for any affordable k (`Kind.ESTIMATE`).
Both estimators run k samples `chunk_size` at a time with a running logsumexp
(`gen_jax.likelihood.importance`), so k = 5000 costs no more memory than k = chunk_size. The prior's
draws do not depend on x, so the images of one call share them: one decoder pass per draw, not per
draw and image (each image's estimate is the same in distribution; those of one call are correlated).

`latent_variable_model` assembles any Gaussian-latent model from an encoder and a decoder
likelihood; `linear_gaussian` builds the tiny model whose log p(x) is known in closed form
(p(x) = N(b, W W^T + s^2 I)), which the tests use to check the very same estimator code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.scipy.stats import norm

from gen_jax.core import Estimator, Kind, Model, check_batch
from gen_jax.core.capabilities import LatentVariable
from gen_jax.data.transforms import binarize
from gen_jax.likelihood import discretized
from gen_jax.likelihood.importance import all_log_weights, log_mean_exp_chunked
from gen_jax.nn.conv import Conv, depth_to_space
from gen_jax.nn.mlp import activation as activation_fn
from gen_jax.nn.mlp import compute_dtype as dtype_of
from gen_jax.nn.mlp import mixed_precision

Array = jax.Array
Params = Any

LIKELIHOODS = ("logistic_mixture", "bernoulli")


# ----------------------------------------------------------------------------- networks


class ConvEncoder(nn.Module):
    """Images (B, H, W, C) in [-1, 1] -> posterior means and log-scales, each (B, latent_dim).

    Each level halves the resolution with a stride-2 3x3 convolution, then adds a residual 3x3
    convolution; a dense layer of `dense_width` units reads the last feature map.
    """

    channels: Sequence[int]
    latent_dim: int
    dense_width: int
    activation: Callable[[Array], Array]
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: Array) -> tuple[Array, Array]:
        act = self.activation
        h = x
        for c in self.channels:
            h = act(Conv(c, (3, 3), strides=(2, 2), impl=self.conv_impl)(h))
            h = h + act(Conv(c, (3, 3), impl=self.conv_impl)(h))
        h = act(nn.Dense(self.dense_width)(h.reshape(h.shape[0], -1)))
        out = nn.Dense(2 * self.latent_dim, kernel_init=nn.initializers.zeros)(h)
        return out[:, : self.latent_dim], out[:, self.latent_dim :]


class ConvDecoder(nn.Module):
    """Latents (B, latent_dim) -> per-pixel likelihood parameters (B, H, W, out_channels).

    A dense layer makes an (H / 2^L, W / 2^L, channels[0]) map; each of the L levels applies a
    residual 3x3 convolution and doubles the resolution by a 3x3 convolution to 4x the next width
    and a pixel shuffle (`depth_to_space`): every convolution runs at the lower resolution, which
    keeps the decoder cheap on a CPU. Stride-1 convolutions are `gen_jax.nn.conv.Conv` (im2col on CPU).
    """

    out_shape: tuple[int, int, int]
    channels: Sequence[int]
    dense_width: int
    activation: Callable[[Array], Array]
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, z: Array) -> Array:
        act = self.activation
        height, width, out_channels = self.out_shape
        f = 2 ** len(self.channels)
        h = act(nn.Dense(self.dense_width)(z))
        h = act(nn.Dense((height // f) * (width // f) * self.channels[0])(h))
        h = h.reshape(z.shape[0], height // f, width // f, self.channels[0])
        for i, c in enumerate(self.channels):
            h = h + act(Conv(c, (3, 3), impl=self.conv_impl)(h))
            last = i == len(self.channels) - 1
            nxt = out_channels if last else self.channels[i + 1]
            h = depth_to_space(Conv(4 * nxt, (3, 3), impl=self.conv_impl)(h), 2)
            if not last:
                h = act(h)
        return h


# ----------------------------------------------------------------------------- the generic model


def gaussian_kl(mean: Array, log_scale: Array) -> Array:
    """KL(N(mean, diag exp(log_scale)^2) || N(0, I)), summed over the last axis."""
    return 0.5 * jnp.sum(jnp.square(mean) + jnp.exp(2.0 * log_scale) - 1.0 - 2.0 * log_scale, axis=-1)


def _weights(encode_one, decoder_log_prob, prepare, latent_dim: int):
    """weight_fn(params, x (B, ...), key, proposal) -> (keys (c,) -> log weights (B, c)): the importance
    log weights log p(x | z) + log p(z) - log r(z), z ~ r the posterior q(z | x) or the prior.

    Posterior: example i draws its own z_j (from fold_in(key_j, i)). Prior: the draws do not
    depend on x, so every example of the call shares them (from `key` itself) and the decoder runs once
    per draw, not once per draw and example (vmap leaves the x-free decoding unbatched): each example's
    estimate is the same in distribution, the estimates of one call's examples are correlated."""

    def weight_fn(params, x, key, proposal):
        keys = jax.random.split(key, x.shape[0])
        x = jax.vmap(lambda xi, k: prepare(xi, jax.random.split(k)[0]))(x, keys)
        if proposal == "prior":

            def prior_weights(sample_keys):
                z = jax.vmap(lambda k: jax.random.normal(k, (latent_dim,)))(sample_keys)
                return jax.vmap(lambda xi: decoder_log_prob(params, z, xi))(x)

            return prior_weights, _sample_key(key)
        if proposal != "posterior":
            raise ValueError(f"unknown proposal {proposal!r}; choose 'posterior' or 'prior'")
        mean, log_scale = jax.vmap(lambda xi: encode_one(params, xi))(x)

        def posterior_weights(sample_keys):
            def one(xi, m, s, i):  # example i's draw j from fold_in(key_j, i)
                eps = jax.vmap(lambda kj: jax.random.normal(jax.random.fold_in(kj, i), (latent_dim,)))(
                    sample_keys
                )
                z = m[None] + jnp.exp(s)[None] * eps
                log_pz = jnp.sum(norm.logpdf(z), axis=-1)
                log_q = jnp.sum(norm.logpdf(eps) - s[None], axis=-1)
                return decoder_log_prob(params, z, xi) + log_pz - log_q

            return jax.vmap(one)(x, mean, log_scale, jnp.arange(x.shape[0]))

        return posterior_weights, _sample_key(key)

    return weight_fn


def _sample_key(key):
    """The key every estimate of one call draws its z_j from."""
    return jax.random.fold_in(key, 1)


def _estimators(weight_fn, event_shape, num_samples: int, chunk_size: int):
    """(estimate(proposal, k) -> log_prob function, log_weights(params, x, key, k, proposal, chunk))."""

    def estimate(proposal: str, k: int):
        def log_prob_k(params, x, key):
            check_batch(x, event_shape)
            return log_mean_exp_chunked(*weight_fn(params, x, key, proposal), k, chunk_size)

        return log_prob_k

    def log_weights(params, x, key, k, proposal="posterior", chunk=None):
        """All k log weights of each example, (B, k): the draws `estimate` averages (same key)."""
        check_batch(x, event_shape)
        return all_log_weights(*weight_fn(params, x, key, proposal), k, chunk or chunk_size)

    return estimate, log_weights


def latent_variable_model(
    name: str,
    event_shape: tuple[int, ...],
    latent_dim: int,
    init: Callable[[Array, Array], Params],
    encode: Callable[[Params, Array], tuple[Array, Array]],
    decoder_log_prob: Callable[[Params, Array, Array], Array],
    decoder_sample: Callable[[Params, Array, Array], Array],
    prepare: Callable[[Array, Array], Array] | None = None,
    num_samples: int = 1000,
    chunk_size: int = 100,
    info: dict | None = None,
    internals: dict | None = None,
) -> Model:
    """A Gaussian-latent model trained by the ELBO, with IWAE and prior estimators of log p(x).

    Args:
      encode: (params, x (B, *event_shape)) -> posterior means and log-scales, (B, latent_dim) each.
      decoder_log_prob: (params, z (c, latent_dim), x ONE example) -> log p(x | z_i), shape (c,).
      decoder_sample: (params, z (n, latent_dim), key) -> n examples drawn from p(x | z).
      prepare: (x, key) -> the data the model scores (e.g. a dynamic binarization); identity if None.
      num_samples, chunk_size: k of the two estimators, and how many samples are alive at once.
    """
    event_shape = tuple(event_shape)
    prepare = prepare or (lambda x, key: x)

    def encode_one(params, x):
        mean, log_scale = encode(params, x[None])
        return mean[0], log_scale[0]

    def elbo_one(params, x, key):
        k_prep, k_z = jax.random.split(key)
        x = prepare(x, k_prep)
        mean, log_scale = encode_one(params, x)
        z = mean + jnp.exp(log_scale) * jax.random.normal(k_z, mean.shape)
        rec = decoder_log_prob(params, z[None], x)[0]
        kl = gaussian_kl(mean, log_scale)
        return rec - kl, rec, kl

    def elbo_terms(params, x, key):
        check_batch(x, event_shape)
        return jax.vmap(elbo_one, in_axes=(None, 0, 0))(params, x, jax.random.split(key, x.shape[0]))

    def loss(params, batch, key):
        elbo, rec, kl = elbo_terms(params, batch, key)
        nelbo = -jnp.mean(elbo)
        return nelbo, {"nelbo": nelbo, "reconstruction": -jnp.mean(rec), "kl": jnp.mean(kl)}

    def sample(params, key, n):
        k_z, k_x = jax.random.split(key)
        return decoder_sample(params, jax.random.normal(k_z, (n, latent_dim)), k_x)

    weight_fn = _weights(encode_one, decoder_log_prob, prepare, latent_dim)
    estimate, log_weights = _estimators(weight_fn, event_shape, num_samples, chunk_size)
    return Model(
        name=name,
        event_shape=event_shape,
        kind=Kind.LOWER_BOUND,
        init=init,
        loss=loss,
        log_prob=lambda params, x, key: elbo_terms(params, x, key)[0],
        sample=sample,
        info={"objective": "elbo", **(info or {})},
        estimators={
            "iwae": Estimator(Kind.ESTIMATE, estimate("posterior", num_samples)),
            "prior": Estimator(Kind.ESTIMATE, estimate("prior", num_samples)),
        },
        capabilities=(LatentVariable(latent_dim, log_weights),),
        internals={
            "encode": encode,
            "decoder_log_prob": decoder_log_prob,
            "elbo_terms": elbo_terms,
            "estimate": estimate,
            **(internals or {}),
        },
    )


# ----------------------------------------------------------------------------- image VAEs


def _check_image_shape(event_shape, encoder_channels, decoder_channels) -> tuple[int, int, int]:
    if len(event_shape) != 3:
        raise ValueError(f"vae models images (H, W, C); got examples of shape {event_shape}")
    height, width, _ = event_shape
    for levels in (len(encoder_channels), len(decoder_channels)):
        if height % 2**levels or width % 2**levels:
            raise ValueError(
                f"image size {height}x{width} is not divisible by 2^{levels} (one halving per level of "
                f"encoder_channels={list(encoder_channels)} / decoder_channels={list(decoder_channels)}); "
                "use fewer levels or pad the images"
            )
    return event_shape


def _pixel_likelihood(likelihood: str, decode):
    """(decoder_log_prob, decoder_sample, decoder_mean) of the per-pixel decoder on `decode(params, z)`
    (B, H, W, C, parameters per pixel): a discretized logistic mixture or a Bernoulli."""

    def decoder_log_prob(params, z, x):
        out = decode(params, z)
        if likelihood == "bernoulli":
            logits = out[..., 0]
            lp = x[None] * logits - jax.nn.softplus(logits)
        else:
            lp = discretized.mixture_log_prob(out, jnp.broadcast_to(x, out.shape[:-1]))
        return jnp.sum(lp, axis=(1, 2, 3))

    def decoder_sample(params, z, key):
        out = decode(params, z)
        if likelihood == "bernoulli":
            return (255 * jax.random.bernoulli(key, jax.nn.sigmoid(out[..., 0])).astype(jnp.uint8)).astype(
                jnp.uint8
            )
        return discretized.mixture_sample(out, key)

    def decoder_mean(params, z):
        """Mean image (0..255 floats) of p(x | z): for figures."""
        out = decode(params, z)
        if likelihood == "bernoulli":
            return 255.0 * jax.nn.sigmoid(out[..., 0])
        return discretized.mixture_mean(out)

    return decoder_log_prob, decoder_sample, decoder_mean


def vae(
    event_shape: tuple[int, ...],
    likelihood: str = "logistic_mixture",
    latent_dim: int = 32,
    encoder_channels: Sequence[int] = (32, 64),
    decoder_channels: Sequence[int] = (64, 32),
    dense_width: int = 256,
    num_mixtures: int = 5,
    activation: str = "silu",
    num_samples: int = 1000,
    chunk_size: int = 100,
    conv_impl: str = "auto",
    compute_dtype: str = "float32",
    name: str = "vae",
) -> Model:
    """A convolutional VAE on images (H, W, C) of 8-bit values (see the module docstring).

    H and W must be divisible by 2 ** len(encoder_channels) and 2 ** len(decoder_channels);
    `dense_width`: the dense layer between the convolutions and the latent, on both sides.
    `num_samples`: k of the "iwae" and "prior" estimators (default 1000), run `chunk_size` at a time.
    `compute_dtype`: "bfloat16" runs encoder and decoder in bfloat16 (float32 parameters, KL and
    pixel likelihoods).
    """
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {likelihood!r}; choose one of {LIKELIHOODS}")
    height, width, channels = _check_image_shape(
        tuple(int(s) for s in event_shape), encoder_channels, decoder_channels
    )
    act = activation_fn(activation)
    per_pixel = 3 * num_mixtures if likelihood == "logistic_mixture" else 1
    encoder = ConvEncoder(tuple(encoder_channels), latent_dim, dense_width, act, conv_impl)
    decoder = ConvDecoder(
        (height, width, channels * per_pixel), tuple(decoder_channels), dense_width, act, conv_impl
    )
    bernoulli = likelihood == "bernoulli"
    encoder_input = (lambda x: 2.0 * x - 1.0) if bernoulli else discretized.to_unit_scale

    run_encoder, run_decoder = (mixed_precision(m.apply, dtype_of(compute_dtype)) for m in (encoder, decoder))

    def encode(params, x):
        return run_encoder({"params": params["encoder"]}, encoder_input(x))

    def decode(params, z):
        out = run_decoder({"params": params["decoder"]}, z)
        return out.reshape(z.shape[0], height, width, channels, per_pixel)

    def init(key, x):
        k_enc, k_dec = jax.random.split(key)
        return {
            "encoder": encoder.init(k_enc, jnp.zeros((1, height, width, channels), jnp.float32))["params"],
            "decoder": decoder.init(k_dec, jnp.zeros((1, latent_dim), jnp.float32))["params"],
        }

    decoder_log_prob, decoder_sample, decoder_mean = _pixel_likelihood(likelihood, decode)
    desc = (
        "Bernoulli per pixel (binarized data)"
        if bernoulli
        else (f"{num_mixtures}-component discretized logistic mixture per pixel")
    )
    architecture = (
        f"conv encoder {list(encoder_channels)} + dense {dense_width} -> {latent_dim}-d Gaussian latent; "
        f"dense {dense_width} + conv decoder {list(decoder_channels)} (pixel shuffle); {desc}; {activation}"
    )
    info = dict(family="vae", architecture=architecture, likelihood=likelihood, num_samples=num_samples)
    return latent_variable_model(
        name,
        (height, width, channels),
        latent_dim,
        init,
        encode,
        decoder_log_prob,
        decoder_sample,
        prepare=binarize if bernoulli else None,
        num_samples=num_samples,
        chunk_size=chunk_size,
        info=info,
        internals={"decode": decode, "decoder_mean": decoder_mean},
    )


def vae_bin(event_shape: tuple[int, ...], **kwargs) -> Model:
    """The VAE with a Bernoulli decoder on dynamically binarized images."""
    kwargs.setdefault("name", "vae_bin")
    return vae(event_shape, likelihood="bernoulli", **kwargs)


# ----------------------------------------------------------------------------- a closed-form check


def linear_gaussian(
    weight: Array,
    bias: Array,
    noise_scale: float,
    encoder_weight: Array,
    encoder_bias: Array,
    encoder_log_scale: Array,
    num_samples: int = 1000,
    chunk_size: int = 100,
) -> Model:
    """z ~ N(0, I_d), x | z ~ N(W z + b, s^2 I_D), so p(x) = N(b, W W^T + s^2 I) exactly
    (`internals["exact_log_prob"](x)`); a linear encoder q(z | x) = N(A x + c, diag exp(l)^2).

    Built with `latent_variable_model`, so its ELBO and estimators are the VAE's own code. The
    parameters are fixed (the model is for checking estimators, not for training): `init`
    returns them and `params` is the argument every function takes.
    """
    weight, bias = jnp.asarray(weight, jnp.float32), jnp.asarray(bias, jnp.float32)
    dim, latent_dim = weight.shape
    fixed = {
        "weight": weight,
        "bias": bias,
        "enc_weight": jnp.asarray(encoder_weight, jnp.float32),
        "enc_bias": jnp.asarray(encoder_bias, jnp.float32),
        "enc_log_scale": jnp.asarray(encoder_log_scale, jnp.float32),
    }
    log_s = math.log(noise_scale)

    def encode(params, x):
        mean = x @ params["enc_weight"].T + params["enc_bias"][None]
        return mean, jnp.broadcast_to(params["enc_log_scale"], mean.shape)

    def decoder_log_prob(params, z, x):
        loc = z @ params["weight"].T + params["bias"][None]
        return jnp.sum(norm.logpdf(x[None], loc, noise_scale), axis=-1)

    def decoder_sample(params, z, key):
        loc = z @ params["weight"].T + params["bias"][None]
        return loc + noise_scale * jax.random.normal(key, loc.shape)

    def exact_log_prob(params, x):
        cov = params["weight"] @ params["weight"].T + math.exp(2 * log_s) * jnp.eye(dim)
        chol = jnp.linalg.cholesky(cov)
        white = jax.scipy.linalg.solve_triangular(chol, (x - params["bias"][None]).T, lower=True)  # (D, B)
        log_det = 2.0 * jnp.sum(jnp.log(jnp.diag(chol)))
        return -0.5 * (jnp.sum(jnp.square(white), axis=0) + log_det + dim * math.log(2 * math.pi))

    return latent_variable_model(
        "linear_gaussian",
        (dim,),
        latent_dim,
        lambda key, x: fixed,
        encode,
        decoder_log_prob,
        decoder_sample,
        num_samples=num_samples,
        chunk_size=chunk_size,
        info=dict(family="vae", architecture=f"linear Gaussian, {latent_dim} -> {dim}"),
        internals={"exact_log_prob": exact_log_prob, "params": fixed},
    )


vae_bin.forwards_to = vae
vae_bin.fixed_options = {"likelihood": "bernoulli"}
