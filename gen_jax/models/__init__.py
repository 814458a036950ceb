"""Model families on one surface (`gen_jax.core.Model`); `make_model` builds any of them by name."""

from gen_jax.core import Estimator, Kind, Model, UpdateGroups, check_batch, num_params
from gen_jax.models.registry import MODELS, make_model

__all__ = ["Estimator", "Kind", "MODELS", "Model", "UpdateGroups", "check_batch", "make_model", "num_params"]
