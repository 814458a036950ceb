"""The bottom layer: the model surface (`Model`, `Kind`), typed capabilities, errors and units.

Nothing here imports another part of gen_jax; every other layer may import it.
"""

from gen_jax.core import capabilities
from gen_jax.core.errors import ConfigError, DataError, UserError
from gen_jax.core.model import AuxState, Estimator, Kind, Model, UpdateGroups, check_batch, num_params
from gen_jax.core.units import bits_per_dim_to_nats, nats_to_bits_per_dim

__all__ = [
    "AuxState",
    "ConfigError",
    "DataError",
    "Estimator",
    "Kind",
    "Model",
    "UpdateGroups",
    "UserError",
    "bits_per_dim_to_nats",
    "capabilities",
    "check_batch",
    "nats_to_bits_per_dim",
    "num_params",
]
