"""Likelihood estimators and units: exact, bounds, estimates, grids."""

from gen_jax.core.units import bits_per_dim_to_nats, nats_to_bits_per_dim  # re-exported for convenience
from gen_jax.likelihood.grid import (
    evaluate_on_grid,
    grid_mass,
    grid_points,
    log_integrate_2d,
    log_integrate_values,
)

__all__ = [
    "bits_per_dim_to_nats",
    "evaluate_on_grid",
    "grid_mass",
    "grid_points",
    "log_integrate_2d",
    "log_integrate_values",
    "nats_to_bits_per_dim",
]
