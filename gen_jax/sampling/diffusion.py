"""Samplers of a variance-preserving diffusion (`gen_jax.process.VPProcess`), from t = 1 to t = 0.

- `sde_sample`: the reverse SDE on a uniform time grid of `num_steps`, either
  "ancestral" (the exact Gaussian posterior step q(z_s | z_t, x = x_hat(z_t)) of the model, VDM's
  sampler) or "euler_maruyama" (z_s = z_t - h [f z - g^2 score] + g sqrt(h) xi);
- `ode_sample`: the probability-flow ODE with an adaptive diffrax solver, returning the
  number of function evaluations per sample too.

Each step is written for ONE example, run as a `lax.scan` over steps, and vmapped over samples;
the step key is `fold_in(key_of_sample, step)`. The functions are jittable (n, event_shape,
num_steps and the ODE config static). They return latents z_0; a model turns them into data
with its decoder.
"""

from __future__ import annotations

from typing import Any

import diffrax
import jax
import jax.numpy as jnp

from gen_jax.process import SOLVERS, ODEConfig, VPProcess, nfe_from_steps

Array = jax.Array


def ancestral_step(process: VPProcess, params: Any, z: Array, t: Array, s: Array, noise: Array) -> Array:
    """z_s ~ q(z_s | z_t, x_hat): mean sqrt(a_s/a_t) (z_t - sigma_t c eps_hat), variance sigma_s^2 c,
    with c = 1 - SNR_t / SNR_s = -expm1(gamma_s - gamma_t) and a = alpha^2 (VDM's `sample`)."""
    g_t, g_s = process.gamma(params, t), process.gamma(params, s)
    c = -jnp.expm1(g_s - g_t)
    eps_hat = process.eps_g(params, z, g_t)
    scale = jnp.sqrt(jax.nn.sigmoid(-g_s) / jax.nn.sigmoid(-g_t))
    mean = scale * (z - jnp.sqrt(jax.nn.sigmoid(g_t)) * c * eps_hat)
    return mean + jnp.sqrt(jax.nn.sigmoid(g_s) * c) * noise


def euler_maruyama_step(process: VPProcess, params: Any, z: Array, t: Array, s: Array, noise: Array) -> Array:
    """One Euler-Maruyama step of the reverse SDE from t down to s < t."""
    h = t - s
    _, g = process.sde(params, z, t)
    return z - h * process.reverse_drift(params, z, t) + g * jnp.sqrt(h) * noise


_STEPS = {"ancestral": ancestral_step, "euler_maruyama": euler_maruyama_step}


def sde_sample(
    process: VPProcess,
    params: Any,
    key: Array,
    n: int,
    event_shape: tuple[int, ...],
    num_steps: int,
    method: str = "ancestral",
    z1: Array | None = None,
) -> Array:
    """n latents z_0 (n, *event_shape) by `num_steps` steps of the reverse SDE from z_1 ~ N(0, I)
    (or the given `z1`)."""
    if method not in _STEPS:
        raise ValueError(f"unknown SDE sampler {method!r}; choose one of {sorted(_STEPS)}")
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    step = _STEPS[method]
    k_init, k_run = jax.random.split(key)
    if z1 is None:
        z1 = jax.random.normal(k_init, (n, *event_shape))
    times = jnp.linspace(1.0, 0.0, num_steps + 1)

    def one(z, key):
        def body(z, i):
            noise = jax.random.normal(jax.random.fold_in(key, i), z.shape, z.dtype)
            return step(process, params, z, times[i], times[i + 1], noise), None

        return jax.lax.scan(body, z, jnp.arange(num_steps))[0]

    return jax.vmap(one)(z1, jax.random.split(k_run, z1.shape[0]))


def ode_sample(
    process: VPProcess,
    params: Any,
    key: Array,
    n: int,
    event_shape: tuple[int, ...],
    cfg: ODEConfig | None = None,
    z1: Array | None = None,
) -> tuple[Array, Array]:
    """(n latents z_0, NFE per sample) by solving the probability-flow ODE from t = 1 to t = 0."""
    cfg = cfg or ODEConfig()
    if z1 is None:
        z1 = jax.random.normal(key, (n, *event_shape))
    term = diffrax.ODETerm(lambda t, z, args: process.ode_drift(params, z, t))

    def one(z):
        sol = diffrax.diffeqsolve(
            term,
            SOLVERS[cfg.solver](),
            1.0,
            0.0,
            None,
            z,
            stepsize_controller=diffrax.PIDController(rtol=cfg.rtol, atol=cfg.atol),
            max_steps=cfg.max_steps,
        )
        return sol.ys[0], nfe_from_steps(sol.stats["num_steps"], cfg.solver)

    return jax.vmap(one)(z1)
