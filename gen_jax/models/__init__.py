"""Model families on one surface (see `base.Model`); `make_model` builds any of them by name."""

from gen_jax.models.base import (
    Estimator,
    Kind,
    Model,
    UpdateGroups,
    check_batch,
    evaluate_nll,
    num_params,
)
from gen_jax.models.registry import MODELS, make_model

__all__ = [
    "Estimator",
    "Kind",
    "Model",
    "UpdateGroups",
    "MODELS",
    "check_batch",
    "evaluate_nll",
    "make_model",
    "num_params",
]
