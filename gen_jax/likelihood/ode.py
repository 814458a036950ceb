"""Exact log-density through an ODE: the instantaneous change of variables, solved with diffrax.

For dz/dt = f(z, t) carrying z(t0) to z(t1) (Chen et al. 2018; FFJORD, Grathwohl et al. 2019),

    log p_t0(z(t0)) = log p_t1(z(t1)) + integral_t0^t1 div f(z(t), t) dt,

so one solve of the augmented state (z, integral of div f) from t0 to t1 gives log p at t0 from
a known density at t1 (the prior). The divergence is

- "exact": the trace of the Jacobian, from D forward-mode products (`jax.linearize` once, its
  linear map vmapped over the basis): right for low dimension;
- "hutchinson": v . (J v) for one probe v per example held fixed along the path (Rademacher or
  Gaussian), an unbiased estimate of the trace from one forward-mode product: for high dimension.

Everything is written for ONE example and vmapped over the batch once (`ode_log_prob`); each
example has its own adaptive step sizes (diffrax's while loop is batched), and the solve runs
on the device inside the caller's jit. The number of function evaluations per example is
returned with the log-density.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import diffrax
import jax
import jax.numpy as jnp

from gen_jax.process.ode import SOLVERS, ODEConfig, nfe_from_steps

__all__ = [
    "ODEConfig",
    "SOLVERS",
    "exact_divergence",
    "hutchinson_divergence",
    "nfe_from_steps",
    "ode_log_prob",
]

Array = jax.Array
VectorField = Callable[[Array, Array], Array]  # (z of one example, t) -> dz/dt, same shape as z


def exact_divergence(f: Callable[[Array], Array], z: Array) -> tuple[Array, Array]:
    """(f(z), trace of df/dz) for z of any shape: one linearization, D forward products."""
    y, jvp = jax.linearize(f, z)
    d = z.size
    basis = jnp.eye(d, dtype=z.dtype).reshape((d, *z.shape))
    diag = jax.vmap(lambda e: jnp.vdot(e, jvp(e)))(basis)
    return y, jnp.sum(diag)


def hutchinson_divergence(f: Callable[[Array], Array], z: Array, probe: Array) -> tuple[Array, Array]:
    """(f(z), probe . (df/dz) probe): unbiased for the trace when E[probe probe^T] = I."""
    y, jv = jax.jvp(f, (z,), (probe,))
    return y, jnp.vdot(probe, jv)


def sample_probe(key: Array, shape: tuple[int, ...], kind: str, dtype=jnp.float32) -> Array:
    """A Hutchinson probe with E[v v^T] = I: Rademacher (+-1) or standard Gaussian."""
    if kind == "rademacher":
        return jax.random.rademacher(key, shape, dtype)
    if kind == "gaussian":
        return jax.random.normal(key, shape, dtype)
    raise ValueError(f"unknown probe {kind!r}; choose 'rademacher' or 'gaussian'")


def ode_log_prob_one(
    vector_field: VectorField,
    prior_log_prob: Callable[[Array], Array],
    z0: Array,
    key: Array | None,
    cfg: ODEConfig,
    t0: float = 0.0,
    t1: float = 1.0,
) -> tuple[Array, Array, Array]:
    """log p_t0(z0) of ONE example by integrating the ODE from t0 to t1.

    Returns (log p_t0(z0), z(t1), number of vector-field evaluations). `prior_log_prob` is the
    density at t1, of one example. `key` draws the Hutchinson probe (unused for "exact").
    """
    if cfg.divergence == "hutchinson":
        if key is None:
            raise ValueError("the Hutchinson divergence needs a PRNG key for its probe")
        probe = sample_probe(key, z0.shape, cfg.probe, z0.dtype)
    else:
        probe = None

    def augmented(t, state, probe):
        z, _ = state
        f = lambda z: vector_field(z, t)
        dz, div = exact_divergence(f, z) if probe is None else hutchinson_divergence(f, z, probe)
        return dz, div

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(augmented),
        SOLVERS[cfg.solver](),
        t0,
        t1,
        None,
        (z0, jnp.zeros((), z0.dtype)),
        args=probe,
        stepsize_controller=diffrax.PIDController(rtol=cfg.rtol, atol=cfg.atol),
        max_steps=cfg.max_steps,
    )
    z1, integral = sol.ys[0][0], sol.ys[1][0]
    return prior_log_prob(z1) + integral, z1, nfe_from_steps(sol.stats["num_steps"], cfg.solver)


def ode_log_prob(
    vector_field: VectorField,
    prior_log_prob: Callable[[Array], Array],
    z0: Array,
    key: Array | None,
    cfg: ODEConfig,
    t0: float = 0.0,
    t1: float = 1.0,
) -> tuple[Array, Array]:
    """`ode_log_prob_one` vmapped over a batch z0 of shape (B, ...): (log p (B,), NFE (B,))."""
    keys = jax.random.split(key, z0.shape[0]) if key is not None else None

    def one(z, k):
        lp, _, nfe = ode_log_prob_one(vector_field, prior_log_prob, z, k, cfg, t0, t1)
        return lp, nfe

    if keys is None:
        return jax.vmap(lambda z: one(z, None))(z0)
    return jax.vmap(one)(z0, keys)


def standard_normal_log_prob(z: Array) -> Array:
    """log N(z; 0, I) of one example of any shape."""
    return -0.5 * jnp.sum(jnp.square(z)) - 0.5 * z.size * math.log(2 * math.pi)
