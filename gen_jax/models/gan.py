"""The implicit model: a generative adversarial network (Goodfellow et al. 2014).

A generator G pushes latent noise z ~ N(0, I) through a network; a discriminator D scores
how "real" a point looks. The model gives samples, `G(z)`, and no density at all:

- the law of G(z) is a pushforward; with a latent smaller than the data its support is a
  lower-dimensional manifold, with no density on the data space, and even when it has one
  it would take the Jacobian of an (unconstrained, non-invertible) network to write it;
- D(x) is a classifier's logit for "x came from the data"; at the optimum it relates to a
  density *ratio* p_data / (p_data + p_G), never to p(x) itself.

So `kind` is `Kind.NONE` and `log_prob` raises; `gen_jax.likelihood.parzen` gives the old
kernel-density *estimate* from samples, and shows how little it can be trusted.

Training: the non-saturating loss with a gradient penalty, both players in ONE scalar loss
written with `stop_gradient`, so that its gradient with respect to D's parameters is D's loss
gradient and with respect to G's parameters is G's loss gradient:

    L = [softplus(-D(x)) + softplus(D(sg(G(z))))] + penalty   (D's part: G(z) held fixed)
      + softplus(-D_sg(G(z)))                                  (G's part: D's params held fixed)

`updates="simultaneous"` steps both players together with the ordinary training loop;
`updates="alternating"` declares `Model.update_groups`, and the loop then updates only the
discriminator on `d_steps` steps and only the generator on the next (see
`training.grouped_optimizer`). Penalties: "r1" (gamma / 2) E_data |grad_x D|^2
(Mescheder et al. 2018) or "wgan-gp" lambda E_interp (|grad_x D| - 1)^2 (Gulrajani et al. 2017).

Networks: MLPs for vectors; for 28x28x1 images a DCGAN-style pair (Radford et al. 2016):
transposed convolutions up from 7x7 in the generator, strided convolutions down in the
discriminator, leaky ReLU, no batch normalisation (a pure function of params; the gradient
penalty takes its place as the stabiliser).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.core import Kind, Model, UpdateGroups
from gen_jax.data.transforms import dequantize
from gen_jax.nn.conv import Conv
from gen_jax.nn.mlp import MLP, mixed_precision
from gen_jax.nn.mlp import activation as activation_fn
from gen_jax.nn.mlp import compute_dtype as dtype_of

PENALTIES = ("r1", "wgan-gp", "none")
UPDATES = ("simultaneous", "alternating")
IMAGE_SHAPE = (28, 28, 1)

NO_DENSITY_MESSAGE = (
    "{name}: a GAN has no log_prob. Its samples are G(z), a pushforward of {latent}-dimensional "
    "noise through a network: with a latent smaller than the data that law lives on a "
    "lower-dimensional manifold and has no density on the {dims}-dimensional data space, and in "
    "any case it cannot be evaluated. The discriminator's output is a classifier's score for "
    "'real vs generated', not a density. For a (biased, easily misleading) number from samples "
    "use the Parzen-window estimate: gen_jax.likelihood.parzen.parzen_from_model(model, params, "
    "key, validation, test)."
)


# ----------------------------------------------------------------------------- networks


def leaky_relu(x: jax.Array) -> jax.Array:
    """Leaky ReLU with slope 0.2 (the discriminators')."""
    return nn.leaky_relu(x, 0.2)


class DCGenerator(nn.Module):
    """z (latent,) -> 28x28x1 image: dense to 7x7xC, two stride-2 transposed convolutions."""

    channels: int = 64
    out_range: tuple[float, float] = (0.0, 1.0)

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        c = self.channels
        x = nn.relu(nn.Dense(7 * 7 * 2 * c)(z)).reshape(*z.shape[:-1], 7, 7, 2 * c)
        x = nn.relu(nn.ConvTranspose(c, (4, 4), strides=(2, 2), padding="SAME")(x))  # 14x14
        x = nn.ConvTranspose(1, (4, 4), strides=(2, 2), padding="SAME")(x)  # 28x28
        lo, hi = self.out_range
        return lo + (hi - lo) * nn.sigmoid(x)


class DCDiscriminator(nn.Module):
    """28x28x1 image -> logit: two stride-2 convolutions with leaky ReLU, then dense."""

    channels: int = 64

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = self.channels
        x = leaky_relu(Conv(c, (4, 4), strides=(2, 2), padding="SAME")(x))  # 14x14
        x = leaky_relu(Conv(2 * c, (4, 4), strides=(2, 2), padding="SAME")(x))  # 7x7
        return nn.Dense(1)(x.reshape(*x.shape[:-3], -1))


# ----------------------------------------------------------------------------- losses


def gradient_penalty(
    discriminator: Callable[[jax.Array], jax.Array],
    real: jax.Array,
    fake: jax.Array,
    key: jax.Array,
    kind: str,
) -> jax.Array:
    """Gradient penalty of a discriminator (batch -> logits of shape (batch,)), unweighted.

    "r1": 0.5 * E_real |grad_x D(x)|^2, zero exactly where D is flat on the data.
    "wgan-gp": E (|grad_x D(x_hat)| - 1)^2 at x_hat = e x + (1 - e) G(z), e ~ U(0, 1) per
    example; zero exactly where D has unit gradient norm (e.g. a linear D with |w| = 1).
    "none": 0.
    Gradients are per example: D must not mix examples (no batch normalisation).
    """
    if kind == "none":
        return jnp.zeros((), real.dtype)
    if kind == "r1":
        points = real
    elif kind == "wgan-gp":
        eps = jax.random.uniform(key, (real.shape[0],) + (1,) * (real.ndim - 1), real.dtype)
        points = eps * real + (1.0 - eps) * fake
    else:
        raise ValueError(f"unknown gradient penalty {kind!r}; choose one of {PENALTIES}")
    grads = jax.grad(lambda x: jnp.sum(discriminator(x)))(points)
    sq_norm = jnp.sum(jnp.square(grads).reshape(grads.shape[0], -1), axis=1)
    if kind == "r1":
        return 0.5 * jnp.mean(sq_norm)
    return jnp.mean(jnp.square(jnp.sqrt(sq_norm + 1e-12) - 1.0))


def gan_loss(
    generate: Callable,
    discriminate: Callable,
    latent_dim: int,
    penalty: str,
    penalty_weight: float,
    prepare: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
):
    """(params, batch, key) -> (loss, metrics): both players' non-saturating losses in one scalar.

    `prepare(batch, key)` maps raw data to the generator's space first (8-bit images: uniform
    dequantization to [0, 1)); None uses the batch as it is.

    The gradient of the returned loss w.r.t. params["discriminator"] is the discriminator's loss
    gradient (real vs generated, plus the weighted penalty); w.r.t. params["generator"] it is the
    generator's non-saturating loss gradient, -log sigmoid(D(G(z))) with D held fixed.
    """

    def loss(params, batch, key):
        kz, kp = jax.random.split(key)
        if prepare is not None:
            batch = prepare(batch, jax.random.fold_in(key, 2))
        pd, pg = params["discriminator"], params["generator"]
        fake = generate(pg, jax.random.normal(kz, (batch.shape[0], latent_dim), batch.dtype))
        d_real = discriminate(pd, batch)
        d_fake = discriminate(pd, jax.lax.stop_gradient(fake))
        d_loss = jnp.mean(jax.nn.softplus(-d_real)) + jnp.mean(jax.nn.softplus(d_fake))
        gp = gradient_penalty(lambda x: discriminate(pd, x), batch, jax.lax.stop_gradient(fake), kp, penalty)
        g_loss = jnp.mean(jax.nn.softplus(-discriminate(jax.lax.stop_gradient(pd), fake)))
        metrics = {
            "d_loss": d_loss,
            "g_loss": g_loss,
            "penalty": gp,
            "d_real": jnp.mean(jax.nn.sigmoid(d_real)),
            "d_fake": jnp.mean(jax.nn.sigmoid(d_fake)),
        }
        return d_loss + penalty_weight * gp + g_loss, metrics

    return loss


# ----------------------------------------------------------------------------- the model


def prepare_images(x: jax.Array, key: jax.Array) -> jax.Array:
    """8-bit images (as the image datasets give them) -> dequantized [0, 1); floats pass unchanged."""
    return dequantize(x, key) if jnp.issubdtype(x.dtype, jnp.integer) else x.astype(jnp.float32)


def to_pixels(y: jax.Array) -> jax.Array:
    """Generated values in [0, 1] -> 8-bit images floor(256 y), like every image model's samples."""
    return jnp.clip(jnp.floor(256.0 * y), 0, 255).astype(jnp.uint8)


def players(gen_net, disc_net, compute_dtype: str):
    """(generate(params, z), discriminate(params, x) -> logits), both computing in `compute_dtype`."""
    run_gen, run_disc = (mixed_precision(n.apply, dtype_of(compute_dtype)) for n in (gen_net, disc_net))
    return lambda pg, z: run_gen({"params": pg}, z), lambda pd, x: run_disc({"params": pd}, x)[..., 0]


def gan_networks(event_shape, latent_dim, hidden, disc_hidden, activation: str, channels: int):
    """(generator, discriminator, latent size, architecture) for vectors (an MLP pair) or 28x28x1 images
    (a DCGAN-style pair generating dequantized pixels in [0, 1))."""
    if len(event_shape) == 1:
        gen_net = MLP(tuple(hidden), event_shape[0], activation_fn(activation))
        disc_net = MLP(tuple(disc_hidden or hidden), 1, leaky_relu)
        disc = list(disc_hidden or hidden)
        arch = f"MLP generator {list(hidden)} {activation}, MLP discriminator {disc} leaky ReLU"
        return gen_net, disc_net, latent_dim or event_shape[0], arch
    if event_shape == IMAGE_SHAPE:
        arch = f"DCGAN-style conv pair, {channels} base channels, no batch norm"
        return DCGenerator(channels, (0.0, 1.0)), DCDiscriminator(channels), latent_dim or 64, arch
    raise ValueError(
        f"gan models vectors (D,) or {IMAGE_SHAPE} images; got examples of shape {event_shape}. "
        f"Flatten them to ({math.prod(event_shape)},) or resize the images."
    )


def alternating_groups(d_steps: int) -> UpdateGroups:
    """`d_steps` discriminator steps, then one generator step (`training.grouped_optimizer`)."""
    labels = lambda params: {
        part: jax.tree_util.tree_map(lambda _, part=part: part, params[part]) for part in params
    }
    return UpdateGroups(labels=labels, schedule=("discriminator",) * d_steps + ("generator",))


def gan(
    event_shape: tuple[int, ...],
    latent_dim: int | None = None,
    hidden: Sequence[int] = (128, 128, 128),
    disc_hidden: Sequence[int] | None = None,
    activation: str = "relu",
    channels: int = 64,
    penalty: str = "r1",
    penalty_weight: float = 0.1,
    updates: str = "simultaneous",
    d_steps: int = 1,
    compute_dtype: str = "float32",
    name: str = "gan",
) -> Model:
    """A GAN on the common Model surface (`Kind.NONE`: samples, no density).

    Args:
      event_shape: (D,) for vectors (MLP pair) or (28, 28, 1) for images (DCGAN-style pair).
      latent_dim: size of z; default D for vectors (a latent smaller than the data would put
        every sample on a lower-dimensional curve), 64 for images.
      hidden / disc_hidden / activation: the vector generator's and discriminator's MLP widths
        (disc_hidden defaults to hidden) and the generator's activation (the discriminator uses
        leaky ReLU).
      channels: the image networks' base width. Image GANs train on dequantized pixels
        (x + u) / 256 (8-bit input) and sample 8-bit images, like the other image models.
        compute_dtype: "bfloat16" runs both networks in bfloat16 (float32 parameters and losses).
      penalty / penalty_weight: "r1", "wgan-gp" or "none", and its weight (gamma or lambda).
      updates: "simultaneous" (both players every step) or "alternating" (`d_steps`
        discriminator steps, then one generator step, via `Model.update_groups`).
    """
    event_shape = tuple(event_shape)
    for value, allowed, what in ((penalty, PENALTIES, "gradient penalty"), (updates, UPDATES, "updates")):
        if value not in allowed:
            raise ValueError(f"unknown {what} {value!r}; choose one of {allowed}")
    if d_steps < 1:
        raise ValueError(f"d_steps must be >= 1, got {d_steps}")
    gen_net, disc_net, latent_dim, architecture = gan_networks(
        event_shape, latent_dim, hidden, disc_hidden, activation, channels
    )
    images = len(event_shape) == 3
    generate, discriminate = players(gen_net, disc_net, compute_dtype)

    def init(key, x):
        kg, kd = jax.random.split(key)
        return {
            "generator": gen_net.init(kg, jnp.zeros((1, latent_dim), jnp.float32))["params"],
            "discriminator": disc_net.init(kd, jnp.zeros((1, *event_shape), jnp.float32))["params"],
        }

    def log_prob(params, x, key=None):
        raise NotImplementedError(
            NO_DENSITY_MESSAGE.format(name=name, latent=latent_dim, dims=math.prod(event_shape))
        )

    def sample(params, key, n):
        y = generate(params["generator"], jax.random.normal(key, (n, latent_dim), jnp.float32))
        return to_pixels(y) if images else y

    info = dict(
        family="gan",
        architecture=architecture,
        objective=f"non-saturating GAN, {penalty} penalty x {penalty_weight}",
        latent_dim=latent_dim,
        updates=updates if updates == "simultaneous" else f"alternating ({d_steps} D : 1 G)",
    )
    loss = gan_loss(
        generate, discriminate, latent_dim, penalty, penalty_weight, prepare_images if images else None
    )
    return Model(
        name=name,
        event_shape=event_shape,
        kind=Kind.NONE,
        init=init,
        loss=loss,
        log_prob=log_prob,
        sample=sample,
        info=info,
        internals={"generate": generate, "discriminate": discriminate},
        update_groups=alternating_groups(d_steps) if updates == "alternating" else None,
    )
