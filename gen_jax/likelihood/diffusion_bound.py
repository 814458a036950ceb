"""The variational bound of a continuous-time variance-preserving diffusion (Kingma et al. 2021, VDM).

With gamma(t) = -log SNR(t) increasing on [0, 1], alpha_t^2 = sigmoid(-gamma_t), sigma_t^2 =
sigmoid(gamma_t) and z_t = alpha_t x + sigma_t eps, every log p(x) of the model is bounded by

    log p(x) >= -prior - diffusion + reconstruction,

    prior          = KL(q(z_1 | x) || N(0, I))                                   (closed form)
    diffusion      = E_{t ~ U(0,1), eps} [ 1/2 gamma'(t) || eps - eps_hat(z_t, t) ||^2 ]
    reconstruction = E_{eps} [ log p(x | z_0) ]

in nats per example. The decoder p(x | z_0) is
- "gaussian" (continuous vectors): N(x; z_0 / alpha_0, exp(gamma_0) I), whose expected log-density
  is the closed form -D/2 (log 2 pi + 1 + gamma_0);
- "discretized" (8-bit images, x the integers 0..255 at the bin centres 2 (x + 1/2) / 256 - 1):
  per pixel a 256-way categorical with logits -1/2 exp(-gamma_0) (z_0 / alpha_0 - centre_k)^2, so
  the bound is on the probability mass of the 8-bit image and converts to bits/dim directly
  (`gen_jax.core.units.nats_to_bits_per_dim`) with no offset.

Every function here is for ONE example; `process` is a `gen_jax.process.VPProcess`.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from gen_jax.process import VPProcess

Array = jax.Array
NUM_VALUES_8BIT = 256


def encode_8bit(x: Array) -> Array:
    """Integer pixel values 0..255 -> bin centres in (-1, 1)."""
    return 2.0 * (jnp.round(x) + 0.5) / NUM_VALUES_8BIT - 1.0


def prior_term(process: VPProcess, params: Any, x: Array) -> Array:
    """KL(N(alpha_1 x, sigma_1^2 I) || N(0, I)) in nats, one example (x already encoded)."""
    g1 = process.gamma(params, jnp.ones(()))
    var1, log_var1 = jax.nn.sigmoid(g1), jax.nn.log_sigmoid(g1)
    return 0.5 * jnp.sum(jax.nn.sigmoid(-g1) * jnp.square(x) + var1 - log_var1 - 1.0)


def diffusion_term(process: VPProcess, params: Any, x: Array, t: Array, eps: Array) -> Array:
    """An unbiased sample of the diffusion term for one example at one time (t ~ U(0, 1), eps ~ N(0, I)):

        1/2 gamma'(t) [ ||eps - eps_hat(z_t, t)||^2 - alpha_t^4 (||eps||^2 - D) ].

    The second part is a control variate with mean exactly zero (E ||eps||^2 = D): at high SNR the
    model predicts little of the noise, so ||eps - eps_hat||^2 is mostly ||eps||^2, whose chi-square
    spread would otherwise dominate the estimate (alpha^4 is the coefficient of ||eps||^2 in the
    error of the ideal predictor for unit-variance Gaussian data)."""
    g, rate = process.gamma_and_rate(params, t)
    return 0.5 * rate * controlled_mse(process, params, x, g, eps)


def controlled_mse(process: VPProcess, params: Any, x: Array, g: Array, eps: Array) -> Array:
    """||eps - eps_hat||^2 - alpha^4 (||eps||^2 - D) at noise level gamma = g: same mean, less variance."""
    return noise_mse(process, params, x, g, eps) - control_variate(g, eps)


def control_variate(g: Array, eps: Array) -> Array:
    """alpha^4 (||eps||^2 - D) at noise level gamma = g, one example: exactly mean zero over eps."""
    return jnp.square(jax.nn.sigmoid(-g)) * (jnp.sum(jnp.square(eps)) - eps.size)


def noise_mse(process: VPProcess, params: Any, x: Array, g: Array, eps: Array) -> Array:
    """||eps - eps_hat(alpha x + sigma eps, gamma)||^2 at noise level gamma = g, one example."""
    z = jnp.sqrt(jax.nn.sigmoid(-g)) * x + jnp.sqrt(jax.nn.sigmoid(g)) * eps
    return jnp.sum(jnp.square(eps - process.eps_g(params, z, g)))


def gaussian_reconstruction_term(process: VPProcess, params: Any, num_dims: int) -> Array:
    """E_eps log N(x; z_0 / alpha_0, exp(gamma_0) I) = -D/2 (log 2 pi + 1 + gamma_0), in closed form."""
    g0 = process.gamma(params, jnp.zeros(()))
    return -0.5 * num_dims * (math.log(2 * math.pi) + 1.0 + g0)


def discretized_log_probs(process: VPProcess, params: Any, z0: Array) -> Array:
    """Per-pixel log-probabilities of the 256 values given z_0: shape (*z0.shape, 256)."""
    g0 = process.gamma(params, jnp.zeros(()))
    alpha0, _ = process.alpha_sigma(params, jnp.zeros(()))
    centres = encode_8bit(jnp.arange(NUM_VALUES_8BIT, dtype=z0.dtype)).reshape((1,) * z0.ndim + (-1,))
    logits = -0.5 * jnp.exp(-g0) * jnp.square((z0 / alpha0)[..., None] - centres)
    return jax.nn.log_softmax(logits, axis=-1)


def discretized_reconstruction_term(process: VPProcess, params: Any, x_int: Array, eps0: Array) -> Array:
    """log P(x | z_0) for z_0 = alpha_0 x + sigma_0 eps0: one sample of the 8-bit reconstruction term."""
    z0 = process.marginal(params, encode_8bit(x_int), jnp.zeros(()), eps0)
    logp = discretized_log_probs(process, params, z0)
    idx = jnp.clip(jnp.round(x_int), 0, NUM_VALUES_8BIT - 1).astype(jnp.int32)
    return jnp.sum(jnp.take_along_axis(logp, idx[..., None], axis=-1))


def elbo_terms(
    process: VPProcess, params: Any, x: Array, key: Array, num_t: int, decoder: str = "gaussian"
) -> dict[str, Array]:
    """The three terms of the bound for ONE example, and `elbo` = reconstruction - prior - diffusion.

    The diffusion term averages `num_t` stratified times t_k = (k + u) / num_t (one uniform u per
    example), each with its own noise: unbiased, with far less variance than num_t independent times.
    `x` is raw data: float vectors for "gaussian", integers 0..255 for "discretized".
    """
    k_t, k_eps, k_0 = jax.random.split(key, 3)
    t = (jnp.arange(num_t, dtype=jnp.float32) + jax.random.uniform(k_t)) / num_t
    eps = jax.random.normal(k_eps, (num_t, *x.shape))
    if decoder == "gaussian":
        xe = x
        recon = gaussian_reconstruction_term(process, params, x.size)
    elif decoder == "discretized":
        xe = encode_8bit(x)
        recon = discretized_reconstruction_term(process, params, x, jax.random.normal(k_0, x.shape))
    else:
        raise ValueError(f"unknown decoder {decoder!r}; choose 'gaussian' or 'discretized'")
    diff = jnp.mean(jax.vmap(lambda t, e: diffusion_term(process, params, xe, t, e))(t, eps))
    prior = prior_term(process, params, xe)
    return dict(elbo=recon - prior - diff, prior=prior, diffusion=diff, reconstruction=recon)
