"""Classical baselines fitted by maximum likelihood: the floor every neural model must beat.

- `gaussian`: one full-covariance Gaussian (initialised at its closed-form MLE on the
  example batch, then refined by the training loop like any other model).
- `gaussian_mixture`: K full-covariance Gaussians (`distrax.MixtureSameFamily`), initialised
  by EM on the example batch (means from random data points), then refined by the loop.
- `pixel_categorical`: for 8-bit images, an independent 256-way categorical per pixel fitted by
  counting: the floor every image model must beat (docs/images.md).
All give exact log-densities.
"""

from __future__ import annotations

import math

import distrax
import jax
import jax.numpy as jnp

from gen_jax.core import Kind, Model
from gen_jax.models.common import distribution_model, nll_loss


def _scale_tril(raw: jax.Array) -> jax.Array:
    """Lower-triangular scale with a positive diagonal from an unconstrained square matrix."""
    d = raw.shape[-1]
    diag = jax.nn.softplus(jnp.diagonal(raw, axis1=-2, axis2=-1)) + 1e-5
    eye = jnp.eye(d, dtype=raw.dtype).reshape((1,) * (raw.ndim - 2) + (d, d))
    return jnp.tril(raw, -1) + diag[..., None] * eye


def _inverse_softplus(y: jax.Array) -> jax.Array:
    return y + jnp.log(-jnp.expm1(-y))


def gaussian(event_dim: int, name: str = "gaussian") -> Model:
    """One full-covariance Gaussian, initialised at its closed-form MLE on the example batch."""

    def init(key, x):
        cov = jnp.cov(x, rowvar=False).reshape(event_dim, event_dim) + 1e-6 * jnp.eye(event_dim)
        return {"loc": jnp.mean(x, axis=0), "scale_raw": _raw_from_chol(jnp.linalg.cholesky(cov))}

    def dist(params):
        return distrax.MultivariateNormalTri(params["loc"], _scale_tril(params["scale_raw"]))

    return distribution_model(
        name, (event_dim,), init, dist, dict(family="baseline", architecture="full-covariance Gaussian")
    )


def _raw_from_chol(chol: jax.Array) -> jax.Array:
    """Unconstrained parameters whose `_scale_tril` is the Cholesky factor `chol`."""
    d = chol.shape[-1]
    eye = jnp.eye(d, dtype=chol.dtype).reshape((1,) * (chol.ndim - 2) + (d, d))
    diag = _inverse_softplus(jnp.diagonal(chol, axis1=-2, axis2=-1) - 1e-5)
    return jnp.tril(chol, -1) + diag[..., None] * eye


def em_fit(x: jax.Array, means: jax.Array, num_iters: int = 100, reg: float = 1e-4):
    """Expectation-maximisation for a full-covariance Gaussian mixture, from initial means.

    Returns (log weights (K,), means (K, D), Cholesky factors of the covariances (K, D, D)).
    """
    n, d = x.shape
    k = means.shape[0]
    eye = jnp.eye(d, dtype=x.dtype)

    def log_gauss(means, chol):  # (n, k) component log-densities
        diff = x[:, None, :] - means[None]
        z = jnp.einsum("ked,nkd->nke", jnp.linalg.inv(chol), diff)
        log_det = jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), -1)
        return -0.5 * jnp.sum(z**2, -1) - log_det[None] - 0.5 * d * jnp.log(2 * jnp.pi)

    def step(_, state):
        log_w, means, chol = state
        log_r = log_w[None] + log_gauss(means, chol)
        r = jnp.exp(log_r - jax.scipy.special.logsumexp(log_r, axis=1, keepdims=True))  # (n, k)
        nk = jnp.sum(r, 0) + 1e-6
        means = (r.T @ x) / nk[:, None]
        diff = x[:, None, :] - means[None]
        cov = jnp.einsum("nk,nkd,nke->kde", r, diff, diff) / nk[:, None, None] + reg * eye[None]
        return jnp.log(nk / n), means, jnp.linalg.cholesky(cov)

    spread = jnp.sqrt(jnp.mean(jnp.var(x, 0))) / k ** (1.0 / d)
    init = (jnp.full((k,), -jnp.log(k)), means, jnp.broadcast_to(spread * eye, (k, d, d)))
    return jax.lax.fori_loop(0, num_iters, step, init)


def gaussian_mixture(
    event_dim: int, num_components: int = 10, em_iters: int = 100, name: str = "gmm"
) -> Model:
    """Gaussian mixture; `init` runs EM on the example batch from random data points as means."""
    k = num_components

    def init(key, x):
        if x.shape[0] < 2 * k:
            raise ValueError(f"gmm init needs an example batch of at least {2 * k} points, got {x.shape[0]}")
        x = jnp.asarray(x, jnp.float32)
        means = x[jax.random.choice(key, x.shape[0], (k,), replace=False)]
        log_w, means, chol = em_fit(x, means, em_iters)
        return {"logits": log_w, "locs": means, "scale_raw": _raw_from_chol(chol)}

    def dist(params):
        return distrax.MixtureSameFamily(
            distrax.Categorical(logits=params["logits"]),
            distrax.MultivariateNormalTri(params["locs"], _scale_tril(params["scale_raw"])),
        )

    info = dict(family="baseline", architecture=f"mixture of {k} full-covariance Gaussians (EM init)")
    return distribution_model(name, (event_dim,), init, dist, info)


def pixel_categorical(
    event_shape: tuple[int, ...], num_values: int = 256, pseudocount: float = 1.0, name: str = "pixel_cat"
) -> Model:
    """Independent categorical per pixel over 8-bit values, fitted by counting in `init`.

    log P(x) = sum_i log theta_i[x_i] with theta_i = (count_i + pseudocount) / (N + 256 pseudocount):
    exact (a normalized discrete distribution). Train it with `steps=0` and
    `init_examples` >= the training-set size so that `init` counts every training image;
    a few gradient steps afterwards (on the logits) are harmless but unnecessary.
    """
    event_shape = tuple(event_shape)
    d = math.prod(event_shape)

    def init(key, x):
        flat = jnp.asarray(x).reshape(x.shape[0], d).astype(jnp.int32)
        counts = jax.vmap(lambda col: jnp.bincount(col, length=num_values))(flat.T)  # (d, 256)
        return {"logits": jnp.log(counts.astype(jnp.float32) + pseudocount)}

    def log_prob(params, x, key=None):
        log_theta = jax.nn.log_softmax(params["logits"], axis=-1)  # (d, 256)
        flat = x.reshape(x.shape[0], d).astype(jnp.int32)
        return jnp.sum(jnp.take_along_axis(log_theta[None], flat[..., None], axis=-1)[..., 0], axis=-1)

    def sample(params, key, n):
        draws = jax.random.categorical(key, params["logits"][None], shape=(n, d))
        return draws.astype(jnp.uint8).reshape((n, *event_shape))

    info = dict(
        family="baseline", architecture=f"independent {num_values}-way categorical per pixel, counted"
    )
    return Model(name, event_shape, Kind.EXACT, init, nll_loss(log_prob), log_prob, sample, info=info)
