"""Importance-weighted dequantization: from a one-draw bound to an estimate of the discrete log P(x).

A continuous density q scored on discrete data through uniform dequantization gives, for one draw u,

    log q(x + u) - D log(bin)    (u ~ U[0, 1)^D; `Dequantized` models' log_prob)

an unbiased estimate of a lower bound on log P(x) = log of the integral of q over x's bin. With k
independent draws, the bin's probability is estimated by importance sampling with the uniform
proposal (density 1 / bin volume), so

    log P_k(x) = logsumexp_j [log q(x + u_j) - D log(bin)] - log k

is unbiased for P(x) in the linear domain, below log P(x) in expectation (Jensen), and rises toward
it as k grows (Burda et al. 2016's argument, with the dequantization noise as the latent): the gap
between k = 1 and large k is how much of a flow's (or an ODE's) bits/dim is dequantization slack
rather than model misfit. When log q is itself a noisy estimate (a Hutchinson trace inside an ODE),
exp of it is biased upward and the IW estimate may overshoot: `Dequantized.extra_noise` says so.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def iw_dequantized(log_prob, k: int):
    """log P_k(x) from a one-draw dequantized log_prob(params, x, key): k draws from fold_in(key, j),
    run one after another (the memory of one call), combined by a logsumexp."""
    if k < 1:
        raise ValueError(f"importance-weighted dequantization needs k >= 1 draws, got {k}")

    def log_prob_k(params, x, key=None, **kwargs):
        if key is None:
            raise ValueError("the importance-weighted dequantization estimate needs a PRNG key")
        draws = jax.lax.map(
            lambda j: log_prob(params, x, jax.random.fold_in(key, j), **kwargs), jnp.arange(k)
        )
        return jax.nn.logsumexp(draws, axis=0) - math.log(k)

    return log_prob_k
