"""The one model surface shared by every family.

A model is four pure functions and a label for what its `log_prob` means:

    params = model.init(key, example_batch)
    loss, metrics = model.loss(params, batch, key)      # scalar to minimise, dict of scalars
    logp = model.log_prob(params, x, key)               # per-example, nats, shape (batch,)
    x = model.sample(params, key, n)                    # shape (n, *event_shape)

`model.kind` says what kind of number `log_prob` returns (see `Kind`). What an estimator needs
beyond these four functions a model declares as typed capabilities (`gen_jax.core.capabilities`:
a noise path, latent importance weights, a log Z bracket, a binary support, ...), read with
`model.get(Capability)`. Training loops, estimators and experiments only ever use this surface and
the capabilities, so they never special-case a family or test a model's name.

Conditional models (`context_shape` set) take `context=c` in `log_prob` and `sample`, and train on
batches `{"x": x, "context": c}`.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Callable
from typing import Any, TypeVar

import jax
import jax.numpy as jnp

from gen_jax.core.capabilities import Capability

Params = Any
Array = jax.Array
C = TypeVar("C", bound=Capability)


class Kind(str, enum.Enum):
    """What a model's `log_prob` returns."""

    EXACT = "exact"  # a normalized log-density, exact up to float error (flows, autoregressive)
    LOWER_BOUND = "lower_bound"  # a bound: log p(x) >= value, possibly only in expectation (ELBO)
    ESTIMATE = "estimate"  # a stochastic or approximate estimate of log p(x) (IWAE, AIS log Z)
    UNNORMALIZED = "unnormalized"  # log p~(x) = log p(x) + log Z with log Z unknown (energy models)
    NONE = "none"  # no density at all (implicit models); log_prob raises

    def __str__(self) -> str:
        return self.value


@dataclasses.dataclass(frozen=True)
class Estimator:
    """A further way to get log p(x) from the same parameters (e.g. a diffusion model's
    probability-flow ODE beside its bound, a VAE's IWAE beside its ELBO).

    `grid_n`: cells a side for 2D density grids, for estimators too slow for the default.
    """

    kind: Kind
    log_prob: Callable[..., Array]
    grid_n: int | None = None


# parameter subtrees no optimizer updates: statistics fitted at init (a model's standardization, the
# noise distribution of noise-contrastive estimation)
FROZEN_KEYS = ("standardize", "context_standardize", "nce_noise", "spline_box")


@dataclasses.dataclass(frozen=True)
class UpdateGroups:
    """Parameters updated in turns, e.g. a GAN's discriminator and then its generator.

    `labels(params)` returns a pytree of the same structure whose leaves name each parameter's
    group; `schedule` lists group names, cycled over optimizer steps: step s updates only the
    parameters of group `schedule[s % len(schedule)]` (the others keep their values and their
    optimizer state). The training loop reads it; a model without it updates all parameters on
    every step.
    """

    labels: Callable[[Params], Any]
    schedule: tuple[str, ...]

    def __post_init__(self):
        if not self.schedule:
            raise ValueError("UpdateGroups.schedule needs at least one group name")


@dataclasses.dataclass(frozen=True)
class Model:
    """A generative model as pure functions of its parameters.

    Attributes:
      name: short identifier, used in tables and file names.
      event_shape: shape of one example, e.g. (2,) or (28, 28, 1).
      kind: what `log_prob` returns.
      init: (key, example_batch) -> params.
      loss: (params, batch, key) -> (scalar loss, dict of scalar metrics).
      log_prob: (params, x, key, [context=c]) -> per-example log-density in nats, shape (batch,).
      sample: (params, key, n, [context=c]) -> n samples, shape (n, *event_shape).
      log_prob_se: standard error of `log_prob` common to all examples (e.g. from an AIS log Z),
        or None when the number carries none.
      info: static description (architecture, objective), reported by experiments.
      estimators: further named ways to get log p(x) from the same params (see `Estimator`);
        experiments report each as its own row, named `model/estimator`.
      capabilities: typed interfaces an estimator may use (see `gen_jax.core.capabilities`).
      internals: family-specific pieces for that family's own tests (a flow's bijector); nothing
        outside `gen_jax.models` and the tests reads them.
      update_groups: optional `UpdateGroups`: parameters the training loop updates in turns.
      context_shape: shape of one context vector of a conditional model; None: unconditional.
      aux_state: optional `AuxState`: state the loss carries from step to step (persistent
        chains); the loop then calls `loss(params, batch, key, state)` -> (loss, (metrics, state)).
    """

    name: str
    event_shape: tuple[int, ...]
    kind: Kind
    init: Callable[[Array, Array], Params]
    loss: Callable[..., tuple[Array, Any]]
    log_prob: Callable[..., Array]
    sample: Callable[..., Array]
    log_prob_se: float | None = None
    info: dict = dataclasses.field(default_factory=dict)
    estimators: dict[str, Estimator] = dataclasses.field(default_factory=dict)
    capabilities: tuple[Capability, ...] = ()
    internals: dict = dataclasses.field(default_factory=dict)
    update_groups: UpdateGroups | None = None
    context_shape: tuple[int, ...] | None = None
    aux_state: AuxState | None = None

    @property
    def num_dims(self) -> int:
        """Dimensions of one example (the D of bits/dim)."""
        return math.prod(self.event_shape)

    def replace(self, **changes) -> Model:
        """A copy with `changes` applied (dataclasses.replace)."""
        return dataclasses.replace(self, **changes)

    def get(self, capability: type[C]) -> C | None:
        """The model's capability of this type (or a subclass), or None."""
        for c in self.capabilities:
            if isinstance(c, capability):
                return c
        return None

    def with_capability(self, capability: Capability) -> Model:
        """A copy declaring `capability`, replacing any of the same type."""
        kept = tuple(c for c in self.capabilities if type(c) is not type(capability))
        return self.replace(capabilities=kept + (capability,))

    def views(self) -> list[tuple[str, Model]]:
        """(row name, model) for the primary log_prob and then each estimator, as Models."""
        out = [(self.name, self)]
        for est_name, est in self.estimators.items():
            view = self.replace(kind=est.kind, log_prob=est.log_prob, estimators={})
            out.append((f"{self.name}/{est_name}", view))
        return out


@dataclasses.dataclass(frozen=True)
class AuxState:
    """State a model's loss carries between optimizer steps (e.g. persistent MCMC chains).

    `init(key, params, example_batch) -> state`, a pytree; it is checkpointed with the parameters.
    """

    init: Callable[[Array, Params, Array], Any]


def check_batch(x: Array, event_shape: tuple[int, ...], what: str = "x") -> None:
    """Raise a clear error unless `x` is a batch of examples of shape `event_shape`."""
    shape = tuple(jnp.shape(x))
    if shape[1:] != tuple(event_shape):
        raise ValueError(
            f"{what} has shape {shape}, expected (batch, {', '.join(map(str, event_shape))}): "
            f"a batch of examples each of shape {tuple(event_shape)}. "
            "Add a leading batch axis for a single example (x[None]) or reshape the data."
        )


def num_params(params: Params) -> int:
    """Number of scalar parameters in a pytree."""
    return int(sum(math.prod(jnp.shape(p)) for p in jax.tree_util.tree_leaves(params)))
