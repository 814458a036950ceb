"""Every model by name: `make_model("nsf", (2,), num_layers=4)`.

Experiments pick models by these names and pass config fields as keyword arguments;
they never import a family directly.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from gen_jax.models import baselines, flows
from gen_jax.models.base import Model


def _vector(builder: Callable[..., Model]) -> Callable[..., Model]:
    """Adapt a builder of vector models (taking event_dim) to take an event shape."""

    def build(event_shape: tuple[int, ...], **kwargs) -> Model:
        if len(event_shape) != 1:
            raise ValueError(
                f"{builder.__name__} models vectors; got examples of shape {event_shape}. "
                f"Flatten them to ({math.prod(event_shape)},) or pick an image model."
            )
        return builder(event_shape[0], **kwargs)

    return build


MODELS: dict[str, Callable[..., Model]] = {
    "realnvp": _vector(flows.realnvp),
    "nsf": _vector(flows.nsf),
    "maf": _vector(flows.maf),
    "gaussian": _vector(baselines.gaussian),
    "gmm": _vector(baselines.gaussian_mixture),
}


def make_model(name: str, event_shape: tuple[int, ...], **kwargs) -> Model:
    """Build model `name` for examples of shape `event_shape`; kwargs go to its builder."""
    try:
        builder = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}") from None
    model = builder(tuple(event_shape), **kwargs)
    return model if model.name == name else model.replace(name=name)
