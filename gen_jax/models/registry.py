"""Every model by name: `make_model("nsf", 2, num_layers=4)` or `make_model("glow", (28, 28, 1))`.

Experiments pick models by these names and pass options as keyword arguments; they never import a
family directly. A family's module is imported when one of its models is first built, so a process
pays (in start-up time and memory) only for the families it uses. `model_options(name)` lists a
model's options with their defaults and types (the configuration layer validates overrides
against it), and an unknown option is an error naming the valid ones.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import typing
from collections.abc import Callable

from gen_jax.core import ConfigError, Model

_VECTOR = "vector"
_BINARY = "binary"


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered model: `target` is "module:function" under gen_jax.models; `kind` is "vector"
    (continuous vectors: event_dim in, standardized by default), "binary" (binary vectors), or
    "any" (the builder takes the event shape)."""

    target: str
    kind: str = "any"
    doc: str = ""

    def builder(self) -> Callable[..., Model]:
        """The builder function, imported on first use."""
        module, function = self.target.split(":")
        return getattr(importlib.import_module(f"gen_jax.models.{module}"), function)


MODELS: dict[str, Entry] = {
    "realnvp": Entry("flows:realnvp", _VECTOR, "affine coupling flow"),
    "nsf": Entry("flows:nsf", _VECTOR, "rational-quadratic spline coupling flow"),
    "maf": Entry("flows:maf", _VECTOR, "masked autoregressive flow"),
    "gaussian": Entry("baselines:gaussian", _VECTOR, "full-covariance Gaussian"),
    "gmm": Entry("baselines:gaussian_mixture", _VECTOR, "Gaussian mixture (EM init)"),
    "pixel_cat": Entry("baselines:pixel_categorical", doc="8-bit images: independent categorical per pixel"),
    "glow": Entry("image_flows:glow", doc="8-bit images: multi-scale Glow on dequantized logits"),
    "pixelcnn": Entry("autoregressive:pixelcnn", doc="8-bit images: gated PixelCNN, exact log p"),
    "vae": Entry("vae:vae", doc="8-bit images: conv VAE (ELBO; IWAE and prior-sampling estimators)"),
    "vae_bin": Entry("vae:vae_bin", doc="binarized images: conv VAE with a Bernoulli decoder"),
    "gan": Entry("gan:gan", doc="vectors (MLP pair) or 28x28x1 images (DCGAN pair); no density"),
    "diffusion": Entry("diffusion:diffusion", doc="vectors (TimeMLP) or images (U-Net); bound + ODE"),
    "ebm_flow": Entry("ebm_flow:ebm_flow", doc="8-bit images: Glow x a bounded energy correction (NCE)"),
    "ebm_nsf": Entry("ebm_flow:ebm_nsf", _VECTOR, "NSF x a bounded energy correction (NCE against the NSF)"),
    "ebm": Entry("ebm:ebm", doc="energy model; objective= dsm | dsm_ladder | ssm | naive_mle"),
    "ebm_dsm": Entry("ebm:ebm_dsm", doc="energy model by denoising score matching"),
    "ebm_dsm_ladder": Entry("ebm:ebm_dsm_ladder", doc="noise-conditional energy, DSM over a ladder"),
    "ebm_ssm": Entry("ebm:ebm_ssm", doc="energy model by sliced score matching"),
    "ebm_naive_mle": Entry("ebm:ebm_naive_mle", doc="raw log p~ maximised without a normalizer (diverges)"),
    "ebm_nce": Entry("ebm:ebm_nce", doc="energy model by noise-contrastive estimation (log Z learned)"),
    "ebm_cd": Entry("ebm:ebm_cd", doc="energy model by contrastive divergence (persistent Langevin chains)"),
    "freq_table": Entry("discrete:frequency_table", _BINARY, "binary vectors: counted table of states"),
    "bernoulli": Entry("discrete:bernoulli", _BINARY, "binary vectors: independent Bernoullis"),
    "ar_bernoulli": Entry("discrete:autoregressive_bernoulli", _BINARY, "binary vectors: MADE chain rule"),
    "ebm_exact_ml": Entry("discrete:ebm_exact_ml", _BINARY, "binary energy model by exact ML"),
    "ebm_pseudo_lik": Entry("discrete:ebm_pseudo_lik", _BINARY, "binary energy model by pseudo-likelihood"),
    "ebm_bin_nce": Entry("discrete:ebm_bin_nce", _BINARY, "binary energy model by NCE (log Z learned)"),
    "ebm_bin_cd": Entry("discrete:ebm_bin_cd", _BINARY, "binary energy model by persistent CD (Gibbs)"),
    "bernoulli_mixture": Entry("discrete:bernoulli_mixture", _BINARY, "binary: mixture of Bernoullis"),
    "linear_energy": Entry("discrete:linear_energy", _BINARY, "binary: linear score, closed-form log Z"),
    "rbm": Entry("rbm:rbm", _BINARY, "binary vectors: RBM by (persistent) contrastive divergence"),
}
# the vector models the `standardize` option applies to (continuous vectors, any family)
VECTOR_FAMILIES = (
    "gan",
    "diffusion",
    "ebm",
    "ebm_dsm",
    "ebm_dsm_ladder",
    "ebm_ssm",
    "ebm_naive_mle",
    "ebm_nce",
    "ebm_cd",
)
# continuous vector models wrap their data in the standardizing affine map (`gen_jax.models.standardize`)
DEFAULT_STANDARDIZE = "diagonal"


@dataclasses.dataclass(frozen=True)
class Option:
    """One builder option: its default and its type annotation (a typing object or None)."""

    name: str
    default: object
    annotation: object


def _signature_options(fn) -> dict[str, Option]:
    hints = typing.get_type_hints(fn)
    out = {}
    for p in list(inspect.signature(fn).parameters.values())[1:]:  # the first is the event shape / dim
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or p.default is inspect.Parameter.empty:
            continue
        out[p.name] = Option(p.name, p.default, hints.get(p.name))
    return out


def model_options(name: str) -> dict[str, Option]:
    """Every option `make_model(name, ...)` takes, with its default and type (name excluded)."""
    entry = _entry(name)
    entry_fn = entry.builder()
    fn = getattr(entry_fn, "forwards_to", entry_fn)  # an entry that fixes an option of another builder
    opts = _signature_options(fn)
    options_type = getattr(fn, "options_type", None)
    if options_type is not None:  # a builder taking **options of a dataclass (ebm, diffusion)
        hints = typing.get_type_hints(options_type)
        for f in dataclasses.fields(options_type):
            opts[f.name] = Option(f.name, f.default, hints.get(f.name))
    for fixed in ("name", "context_dim", *getattr(entry_fn, "fixed_options", {})):
        opts.pop(fixed, None)
    if entry.kind == _VECTOR or name in VECTOR_FAMILIES:
        from gen_jax.models.standardize import STANDARDIZE_MODES

        opts["standardize"] = Option("standardize", DEFAULT_STANDARDIZE, typing.Literal[STANDARDIZE_MODES])
    return opts


def _entry(name: str) -> Entry:
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}") from None


def _event_shape(event_shape) -> tuple[int, ...]:
    if isinstance(event_shape, int):
        return (int(event_shape),)
    return tuple(int(s) for s in event_shape)


def make_model(name: str, event_shape: int | tuple[int, ...], **kwargs) -> Model:
    """Build model `name` for examples of shape `event_shape` (an int d means vectors of dimension d);
    kwargs are its options (`model_options(name)`). Continuous vector models are standardized by
    default (`standardize="diagonal"`: an affine map fitted to the training data at init, part of
    the model, its log-determinant counted; "whiten" or None: see `gen_jax.models.standardize`)."""
    entry = _entry(name)
    shape = _event_shape(event_shape)
    valid = model_options(name)
    unknown = sorted(set(kwargs) - set(valid) - {"context_dim"})
    if unknown:
        raise ConfigError(
            f"{name} has no option {', '.join(map(repr, unknown))}; valid options: {', '.join(sorted(valid))}"
        )
    spec = {"name": name, "event_shape": list(shape), "options": dict(kwargs)}  # what `gen_jax.save` writes
    standardize = kwargs.pop("standardize", DEFAULT_STANDARDIZE) if "standardize" in valid else None
    builder = entry.builder()
    if entry.kind in (_VECTOR, _BINARY):
        if len(shape) != 1:
            raise ConfigError(
                f"{name} models vectors; got examples of shape {shape}. Flatten them to "
                f"({math.prod(shape)},) or pick an image model."
            )
        model = builder(shape[0], **kwargs)
    else:
        model = builder(shape, **kwargs)
    if model.name != name:
        model = model.replace(name=name)
    if standardize not in (None, "none") and len(shape) == 1:
        from gen_jax.models.standardize import standardized

        model = standardized(model, standardize)
    return model.replace(info={**model.info, "spec": spec})
