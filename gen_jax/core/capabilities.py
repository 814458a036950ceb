"""Typed capabilities: what an estimator may ask of a model beyond its four functions.

A model lists the capabilities it offers (`Model.capabilities`); an estimator asks for the one it
needs with `model.get(NoisePath)` and works for every model that offers it, whatever its family.
Each capability states an invariant that the registry's contract test checks.

- `ContinuousSpace`: the continuous variable y the density is written in, the map from data to it,
  and the log-density of one y (unnormalized for an energy model). AIS, importance sampling and
  score-based OOD scores run in y.
- `NoisePath`: that log-density is defined along a range of noise levels (a noise-conditional
  energy trained by denoising): AIS can anneal along it.
- `GaussianTerm`: the log-density is a normalized Gaussian plus a correction; AIS whitens with it
  and importance sampling draws from it.
- `NormalizedBase`: the log-density is a normalized base q with exact samples (a flow) plus a
  correction: AIS starts from q and importance sampling draws from it.
- `BoundedCorrection`: that correction is bounded by B, so log Z lies in (-B, B) for certain.
- `BinarySupport`: examples are binary vectors; log Z by enumeration for short ones, Gibbs moves.
- `Dequantized`: `log_prob` is ONE uniform dequantization draw of a continuous density scored on
  discrete data: averaging k draws (importance weights) gives an estimate rising toward log P(x).
- `LatentVariable`: latent-variable importance weights log p(x, z) - log q(z) (IWAE, prior sampling).
- `ProbabilityFlow`: a probability-flow ODE with its solver configuration (diffusion models).
- `MonteCarloBound`: log_prob is a bound estimated with a number of inner draws that can be raised.
- `PartitionFunction`: the model's own log Z: exact (closed form or an enumeration its structure
  allows) and/or AIS and reverse AIS along a path its structure suits (an RBM's block Gibbs).
- `LearnedLogZ`: a log Z the model learned as a parameter (noise-contrastive estimation): a claim of
  self-normalization, to hold against the estimators, not a normalizer.
- `ShortRunSampler`: the Langevin chains a model was trained with (contrastive divergence), runnable
  for any number of steps: short-run samples against long-run ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

Array = Any
Params = Any


class Capability:
    """Base class of every capability (a frozen dataclass)."""


@dataclasses.dataclass(frozen=True)
class ContinuousSpace(Capability):
    """The continuous variable y a model's density is written in.

    to_continuous(params, x, key) -> (y, log_det): a batch of data x mapped to y, and log |dy/dx| per
      example including any discretization term, so that for every model offering it
      log_prob(params, x, key) == vmap(log_density)(params, y) + log_det. For continuous vectors y = x
      (log_det 0) or its standardization; for 8-bit images y is the dequantized value, or its logit,
      and log_det carries the bin volume and the logit's Jacobian.
    log_density(params, y, sigma=None) -> scalar: log density of ONE y (unnormalized for an energy
      model), at noise level sigma for a model with a `NoisePath` (None: the smallest).
    """

    to_continuous: Callable[[Array, Array], tuple[Array, Array]]
    log_density: Callable[..., Array]


@dataclasses.dataclass(frozen=True)
class NoisePath(Capability):
    """`ContinuousSpace.log_density(params, y, sigma)` is the model's density of the data smoothed by
    N(0, sigma^2 I) for sigma in [sigma_min, sigma_max] (in y's units); log_prob is at sigma_min."""

    sigma_min: float
    sigma_max: float


@dataclasses.dataclass(frozen=True)
class GaussianTerm(Capability):
    """The log-density is log N(y; m, U diag(s^2) U^T) plus a correction (zero: exactly that Gaussian).

    moments(params, sigma=None) -> (m (D,), U (D, D) orthogonal, s (D,)) at noise level sigma, y flattened.
    """

    moments: Callable[..., tuple[Array, Array, Array]]


@dataclasses.dataclass(frozen=True)
class NormalizedBase(Capability):
    """The log-density is log q(y) plus a correction, q normalized with exact samples (a flow).

    sample(params, key, n) -> n draws of y (n, *event_shape); log_prob(params, y) -> log q (n,);
    log_correction(params, y) -> the log-density minus log q at ONE y (AIS tempers only this term);
    from_latent(params, z) -> ONE y from ONE latent z (flat, N(0, I) under q): the flow's own map,
    so AIS may run in z, where q is exactly the standard normal (None: no latent map).
    """

    sample: Callable[..., Array]
    log_prob: Callable[..., Array]
    log_correction: Callable[..., Array]
    from_latent: Callable[..., Array] | None = None


@dataclasses.dataclass(frozen=True)
class BoundedCorrection(Capability):
    """log_density = (normalized `GaussianTerm` or `NormalizedBase`) + c(y) with |c| < bound
    everywhere: log Z lies in (-bound, bound) whatever the network learned."""

    bound: float


@dataclasses.dataclass(frozen=True)
class BinarySupport(Capability):
    """Examples are vectors in {0, 1}^D."""


@dataclasses.dataclass(frozen=True)
class Dequantized(Capability):
    """log_prob(params, x, key) = log q(y) + log_det for ONE uniform dequantization y of the discrete x
    drawn from `key`: an unbiased one-sample estimate of a lower bound on log P(x). Independent keys
    give independent draws (nothing else in log_prob is random unless `extra_noise` says so)."""

    num_values: int = 256
    extra_noise: str | None = None  # e.g. "Hutchinson probe": the log q itself is a noisy estimate


@dataclasses.dataclass(frozen=True)
class LatentVariable(Capability):
    """log_weights(params, x, key, k, proposal="posterior"|"prior", chunk=None) -> (batch, k): the k
    importance log weights log p(x, z_j) - log r(z_j) per example, z_j ~ r (the posterior q(z | x) or
    the prior p(z)); logmeanexp over them is the model's IWAE / prior-sampling estimate."""

    latent_dim: int
    log_weights: Callable[..., Array]


@dataclasses.dataclass(frozen=True)
class ProbabilityFlow(Capability):
    """A probability-flow ODE. log_prob_and_nfe(params, x, key, ode_config, probe_key=None) -> (log p
    (batch,), NFE (batch,)): `key` draws the dequantization (8-bit data) and, unless `probe_key` is
    given, the Hutchinson probe; sample(params, key, n, ode_config) -> samples by solving it backwards;
    `config` is the model's default `gen_jax.process.ODEConfig`; `process` its `VPProcess`."""

    log_prob_and_nfe: Callable[..., tuple[Array, Array]]
    sample: Callable[..., Array]
    config: Any
    process: Any


@dataclasses.dataclass(frozen=True)
class MonteCarloBound(Capability):
    """`log_prob` is a Monte Carlo estimate of a variational bound over `num_samples` inner draws per
    example (a diffusion bound's stratified times); log_prob_with(params, x, key, n) uses n draws: the
    same bound, less noise."""

    num_samples: int
    log_prob_with: Callable[..., Array]


@dataclasses.dataclass(frozen=True)
class PartitionFunction(Capability):
    """The model's own estimators of its log Z, for structure a generic estimator cannot use.

    exact(params) -> float | None: log Z in closed form or by an enumeration the structure allows
      (None: too many states);
    ais(params, reference, key, num_chains, num_temps) -> `AISResult`: forward AIS, from below in
      expectation (None: not offered);
    reverse_ais(params, reference, key, num_chains, num_temps) -> (`AISResult`, start): AIS run
      backwards from `start` ("exact samples": from above in expectation; else approximate samples,
      no guarantee). reference: training examples (for a base-rate base).
    """

    exact: Callable[[Params], float | None]
    ais: Callable[..., Any] | None = None
    reverse_ais: Callable[..., Any] | None = None
    exact_method: str = "enumeration"  # how `exact` gets log Z, for the tables
    ais_method: str = ""  # the moves AIS makes along its path, for the tables


@dataclasses.dataclass(frozen=True)
class LearnedLogZ(Capability):
    """read(params) -> the log Z the model learned as a parameter (NCE's normalizing constant)."""

    read: Callable[[Params], Array]


@dataclasses.dataclass(frozen=True)
class ShortRunSampler(Capability):
    """sample(params, key, n, num_steps) -> n samples after `num_steps` Langevin steps from the
    chains' initial distribution; `train_steps` is the number the model was trained with."""

    sample: Callable[..., Array]
    train_steps: int
