"""How probability-flow and CNF ODEs are solved: the solver, its tolerances, and its cost in function
evaluations. Shared by the ODE likelihood (`gen_jax.likelihood.ode`) and the ODE sampler
(`gen_jax.sampling.diffusion`)."""

from __future__ import annotations

import dataclasses

import diffrax
import jax

Array = jax.Array

SOLVERS = {"tsit5": diffrax.Tsit5, "dopri5": diffrax.Dopri5, "dopri8": diffrax.Dopri8}
# new vector-field evaluations per step (accepted or rejected) of these FSAL Runge-Kutta methods
_EVALS_PER_STEP = {"tsit5": 6, "dopri5": 6, "dopri8": 12}
# evaluations before the first step: two to choose the initial step size, one for the FSAL start
_EVALS_AT_START = 3


@dataclasses.dataclass(frozen=True)
class ODEConfig:
    """How to solve a probability-flow / CNF ODE.

    solver: "tsit5", "dopri5" or "dopri8" (adaptive, PID step-size control with rtol/atol).
    divergence: "exact" (Jacobian trace, D Jacobian-vector products) or "hutchinson".
    probe: "rademacher" or "gaussian" (Hutchinson only).
    """

    solver: str = "tsit5"
    rtol: float = 1e-5
    atol: float = 1e-5
    max_steps: int = 4096
    divergence: str = "exact"
    probe: str = "rademacher"

    def __post_init__(self):
        if self.solver not in SOLVERS:
            raise ValueError(f"unknown ODE solver {self.solver!r}; choose one of {sorted(SOLVERS)}")
        if self.divergence not in ("exact", "hutchinson"):
            raise ValueError(f"unknown divergence {self.divergence!r}; choose 'exact' or 'hutchinson'")
        if self.probe not in ("rademacher", "gaussian"):
            raise ValueError(f"unknown probe {self.probe!r}; choose 'rademacher' or 'gaussian'")
        if not (self.rtol > 0 and self.atol > 0):
            raise ValueError(f"rtol and atol must be positive, got {self.rtol}, {self.atol}")


def nfe_from_steps(num_steps: Array, solver: str) -> Array:
    """Vector-field evaluations of an adaptive solve that took `num_steps` (accepted + rejected)."""
    return _EVALS_AT_START + _EVALS_PER_STEP[solver] * num_steps
