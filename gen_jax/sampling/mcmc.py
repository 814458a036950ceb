"""Samplers for any log-density of ONE example, run as `lax.scan` loops vmapped over chains.

    x = mala(log_f, x0, key, step_size=0.05, num_steps=500).positions      # x0: (chains, *event)

- `langevin`: unadjusted Langevin, x' = x + tau grad log f + sqrt(2 tau) noise (biased by O(tau)).
- `mala`, `hmc`: the same moves with a Metropolis correction (blackjax kernels); exact invariance.
- `gibbs_binary`: Gibbs sweeps for binary vectors.
- `annealed_langevin`: Song & Ermon (2019): Langevin at each noise level of a ladder, largest
  first, with a step proportional to sigma_i^2, from a noise-conditional score s(x, sigma).

All return a `ChainResult` with the final positions and the mean acceptance rate per chain.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gen_jax.sampling import kernels

Array = jax.Array


class ChainResult(NamedTuple):
    """A pytree, so the samplers can run inside jit."""

    positions: Array  # (chains, *event_shape)
    acceptance_rate: Array  # (chains,)


def run_transition(
    transition: kernels.Transition, log_f, x0: Array, key: Array, step_size: float, num_steps: int
) -> ChainResult:
    """`num_steps` steps of `transition` on each chain of x0 (chains, *event_shape)."""
    if x0.ndim < 1:
        raise ValueError(f"x0 must be (chains, *event_shape), got shape {x0.shape}")

    def one_chain(k, x):
        if transition.needs_grad:
            value, grad = jax.value_and_grad(log_f)(x)
        else:
            value, grad = log_f(x), None
        return transition.run(k, x, value, grad, log_f, step_size, num_steps)

    pos, acc = jax.vmap(one_chain)(jax.random.split(key, x0.shape[0]), x0)
    return ChainResult(pos, acc)


def mala(log_f, x0: Array, key: Array, step_size: float, num_steps: int) -> ChainResult:
    """Metropolis-adjusted Langevin chains (blackjax.mala)."""
    return run_transition(kernels.mala_transition(), log_f, x0, key, step_size, num_steps)


def hmc(
    log_f, x0: Array, key: Array, step_size: float, num_steps: int, num_integration_steps: int = 10
) -> ChainResult:
    """Hamiltonian Monte Carlo chains (blackjax.hmc), identity mass matrix."""
    return run_transition(kernels.hmc_transition(num_integration_steps), log_f, x0, key, step_size, num_steps)


def gibbs_binary(log_f, x0: Array, key: Array, num_sweeps: int) -> ChainResult:
    """Gibbs sweeps for binary vectors x0 in {0, 1}."""
    return run_transition(kernels.gibbs_transition(), log_f, x0, key, 1.0, num_sweeps)


def langevin(log_f, x0: Array, key: Array, step_size: float, num_steps: int) -> ChainResult:
    """Unadjusted Langevin: no accept/reject, so its stationary law is off by O(step_size)."""
    grad = jax.grad(log_f)

    def one_chain(k, x):
        def body(x, k):
            return x + step_size * grad(x) + jnp.sqrt(2.0 * step_size) * jax.random.normal(k, x.shape), None

        return jax.lax.scan(body, x, jax.random.split(k, num_steps))[0]

    pos = jax.vmap(one_chain)(jax.random.split(key, x0.shape[0]), x0)
    return ChainResult(pos, jnp.ones(x0.shape[0]))


def annealed_langevin(
    score: Callable[[Array, Array], Array],
    x0: Array,
    key: Array,
    sigmas: Array,
    step_scale: float,
    steps_per_level: int,
    denoise: bool = True,
) -> ChainResult:
    """Annealed Langevin dynamics over a noise ladder (Song & Ermon 2019, algorithm 1).

    score(x, sigma): the score of the data smoothed by N(0, sigma^2), for ONE example.
    sigmas: the ladder, any order (run largest first). At level i, `steps_per_level` steps of
    x' = x + (a_i / 2) score(x, sigma_i) + sqrt(a_i) noise with a_i = step_scale sigma_i^2 (the paper's
    eps / sigma_min^2 = step_scale; stable for step_scale well below 1, as the score at level
    sigma varies on the scale sigma).
    denoise: finish with Tweedie's denoising step x + sigma_min^2 score(x, sigma_min).
    """
    sigmas = jnp.sort(jnp.asarray(sigmas, jnp.float32))[::-1]
    sig = jnp.repeat(sigmas, steps_per_level)
    alpha = step_scale * sig**2

    def one_chain(k, x):
        def body(x, inp):
            s, a, k = inp
            return x + 0.5 * a * score(x, s) + jnp.sqrt(a) * jax.random.normal(k, x.shape), None

        x = jax.lax.scan(body, x, (sig, alpha, jax.random.split(k, sig.shape[0])))[0]
        return x + sigmas[-1] ** 2 * score(x, sigmas[-1]) if denoise else x

    pos = jax.vmap(one_chain)(jax.random.split(key, x0.shape[0]), x0)
    return ChainResult(pos, jnp.ones(x0.shape[0]))
