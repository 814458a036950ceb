"""gen_jax: how do we get p(x) out of a generative model, and how far can we trust it?

    import gen_jax
    model = gen_jax.make_model("nsf", 5)                  # any registered model, any dimension
    fit = gen_jax.fit(model, x_train, validation=0.1)     # early stopping, best parameters kept
    gen_jax.evaluate(model, fit.params, x_test)           # {"kind": "exact", "nll": ..., "nll_se": ...}
    gen_jax.save("run", model, fit.params); model, params = gen_jax.load("run")

`Kind` says what a number is (exact, lower_bound, estimate, unnormalized, none); `MODELS` lists
every model and `model_options(name)` its options. docs/own-data.md walks through your own data.
"""

from gen_jax.api import FitResult, evaluate, fit, load, save
from gen_jax.core import ConfigError, DataError, Kind, Model, UserError
from gen_jax.models.registry import MODELS, make_model, model_options
from gen_jax.training import TrainConfig, train

__version__ = "0.2.0"

__all__ = [
    "ConfigError",
    "DataError",
    "FitResult",
    "Kind",
    "MODELS",
    "Model",
    "TrainConfig",
    "UserError",
    "evaluate",
    "fit",
    "load",
    "make_model",
    "model_options",
    "save",
    "train",
]
