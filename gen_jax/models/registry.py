"""Every model by name: `make_model("nsf", (2,), num_layers=4)`.

Experiments pick models by these names and pass config fields as keyword arguments;
they never import a family directly.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from gen_jax.models import baselines, discrete, ebm, flows, gan
from gen_jax.models.autoregressive import pixelcnn
from gen_jax.models.base import Model
from gen_jax.models.diffusion import diffusion
from gen_jax.models.image_flows import glow
from gen_jax.models.vae import vae, vae_bin


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
    "pixel_cat": baselines.pixel_categorical,  # 8-bit images: independent categorical per pixel, counted
    "glow": glow,  # 8-bit images: multi-scale Glow / RealNVP on the logit scale of dequantized data
    "pixelcnn": pixelcnn,  # 8-bit grey-scale images: gated PixelCNN, exact log p
    "vae": vae,  # 8-bit images: conv VAE (ELBO; IWAE and prior-sampling estimators)
    "vae_bin": vae_bin,  # binarized images: conv VAE with a Bernoulli decoder
    "gan": gan.gan,  # vectors (MLP pair) or 28x28x1 images (DCGAN-style pair)
    "diffusion": diffusion,  # vectors (TimeMLP) or images (U-Net); bound + probability-flow ODE
    # energy-based models (vectors: MLP energy; images: conv energy); log_prob is unnormalized
    "ebm": ebm.ebm,  # objective= "dsm" | "dsm_ladder" | "ssm" | "naive_mle"
    "ebm_dsm": ebm.ebm_dsm,
    "ebm_dsm_ladder": ebm.ebm_dsm_ladder,
    "ebm_ssm": ebm.ebm_ssm,
    "ebm_naive_mle": ebm.ebm_naive_mle,
    # the tiny binary world (vectors in {0, 1}^d, d small): exact likelihoods by enumeration
    "freq_table": _vector(discrete.frequency_table),
    "bernoulli": _vector(discrete.bernoulli),
    "ar_bernoulli": _vector(discrete.autoregressive_bernoulli),
    "ebm_exact_ml": _vector(discrete.ebm_exact_ml),
    "ebm_pseudo_lik": _vector(discrete.ebm_pseudo_lik),
}


def make_model(name: str, event_shape: tuple[int, ...], **kwargs) -> Model:
    """Build model `name` for examples of shape `event_shape`; kwargs go to its builder."""
    try:
        builder = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}") from None
    model = builder(tuple(event_shape), **kwargs)
    return model if model.name == name else model.replace(name=name)
