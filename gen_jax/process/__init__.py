"""The diffusion process and how its ODEs are solved: below models, likelihood and sampling."""

from gen_jax.process.ode import SOLVERS, ODEConfig, nfe_from_steps
from gen_jax.process.vp import SCHEDULES, CosineLogSNR, LearnedLogSNR, LinearLogSNR, VPProcess

__all__ = [
    "SOLVERS",
    "SCHEDULES",
    "CosineLogSNR",
    "LearnedLogSNR",
    "LinearLogSNR",
    "ODEConfig",
    "VPProcess",
    "nfe_from_steps",
]
