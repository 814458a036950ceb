"""MCMC on any log-density: Langevin, MALA, HMC, Gibbs, annealed Langevin (vmapped lax.scan loops)."""

from gen_jax.sampling.kernels import Transition, get_transition
from gen_jax.sampling.mcmc import (
    ChainResult,
    annealed_langevin,
    gibbs_binary,
    hmc,
    langevin,
    mala,
    run_transition,
)

__all__ = [
    "ChainResult",
    "Transition",
    "annealed_langevin",
    "get_transition",
    "gibbs_binary",
    "hmc",
    "langevin",
    "mala",
    "run_transition",
]
