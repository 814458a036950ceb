"""Every model by name: `make_model("nsf", (2,), num_layers=4)`.

Experiments pick models by these names and pass config fields as keyword arguments;
they never import a family directly. A family's module is imported when one of its models is
first built, so a process pays (in start-up time and memory) only for the families it uses.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable

from gen_jax.models.base import Model


def _builder(target: str, vector: bool = False) -> Callable[..., Model]:
    """The builder `module:function` (under gen_jax.models), imported on first call; `vector`
    adapts a builder of vector models (taking event_dim) to take an event shape."""
    module, function = target.split(":")

    def build(event_shape: tuple[int, ...], **kwargs) -> Model:
        builder = getattr(importlib.import_module(f"gen_jax.models.{module}"), function)
        if not vector:
            return builder(event_shape, **kwargs)
        if len(event_shape) != 1:
            raise ValueError(
                f"{function} models vectors; got examples of shape {event_shape}. "
                f"Flatten them to ({math.prod(event_shape)},) or pick an image model."
            )
        return builder(event_shape[0], **kwargs)

    build.__name__ = function
    return build


MODELS: dict[str, Callable[..., Model]] = {
    "realnvp": _builder("flows:realnvp", vector=True),
    "nsf": _builder("flows:nsf", vector=True),
    "maf": _builder("flows:maf", vector=True),
    "gaussian": _builder("baselines:gaussian", vector=True),
    "gmm": _builder("baselines:gaussian_mixture", vector=True),
    # 8-bit images: independent categorical per pixel, counted
    "pixel_cat": _builder("baselines:pixel_categorical"),
    # 8-bit images: multi-scale Glow / RealNVP on the logit scale of dequantized data
    "glow": _builder("image_flows:glow"),
    "pixelcnn": _builder("autoregressive:pixelcnn"),  # 8-bit grey-scale images: gated PixelCNN, exact log p
    "vae": _builder("vae:vae"),  # 8-bit images: conv VAE (ELBO; IWAE and prior-sampling estimators)
    "vae_bin": _builder("vae:vae_bin"),  # binarized images: conv VAE with a Bernoulli decoder
    "gan": _builder("gan:gan"),  # vectors (MLP pair) or 28x28x1 images (DCGAN-style pair)
    "diffusion": _builder("diffusion:diffusion"),  # vectors (TimeMLP) or images (U-Net); bound + ODE
    # energy-based models (vectors: MLP energy; images: conv energy); log_prob is unnormalized
    "ebm": _builder("ebm:ebm"),  # objective= "dsm" | "dsm_ladder" | "ssm" | "naive_mle"
    "ebm_dsm": _builder("ebm:ebm_dsm"),
    "ebm_dsm_ladder": _builder("ebm:ebm_dsm_ladder"),
    "ebm_ssm": _builder("ebm:ebm_ssm"),
    "ebm_naive_mle": _builder("ebm:ebm_naive_mle"),
    # the tiny binary world (vectors in {0, 1}^d, d small): exact likelihoods by enumeration
    "freq_table": _builder("discrete:frequency_table", vector=True),
    "bernoulli": _builder("discrete:bernoulli", vector=True),
    "ar_bernoulli": _builder("discrete:autoregressive_bernoulli", vector=True),
    "ebm_exact_ml": _builder("discrete:ebm_exact_ml", vector=True),
    "ebm_pseudo_lik": _builder("discrete:ebm_pseudo_lik", vector=True),
}


def make_model(name: str, event_shape: tuple[int, ...], **kwargs) -> Model:
    """Build model `name` for examples of shape `event_shape`; kwargs go to its builder."""
    try:
        builder = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}") from None
    model = builder(tuple(event_shape), **kwargs)
    return model if model.name == name else model.replace(name=name)
