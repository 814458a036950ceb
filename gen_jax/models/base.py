"""The one model surface shared by every family.

A model is four pure functions and a label for what its `log_prob` means:

    params = model.init(key, example_batch)
    loss, metrics = model.loss(params, batch, key)      # scalar to minimise, dict of scalars
    logp = model.log_prob(params, x, key)               # per-example, nats, shape (batch,)
    x = model.sample(params, key, n)                    # shape (n, *event_shape)

`model.kind` says what kind of number `log_prob` returns (see `Kind`). Training loops,
likelihood estimators and experiments only ever use this surface, so they never
special-case a family.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Params = Any
Array = jax.Array


class Kind(str, enum.Enum):
    """What a model's `log_prob` returns."""

    EXACT = "exact"  # a normalized log-density, exact up to float error (flows, autoregressive)
    LOWER_BOUND = "lower_bound"  # a bound: log p(x) >= value (VAE ELBO, diffusion bound)
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
    log_prob: Callable[[Params, Array, Array], Array]
    grid_n: int | None = None


@dataclasses.dataclass(frozen=True)
class UpdateGroups:
    """Parameters updated in turns, e.g. a GAN's discriminator and then its generator.

    `labels(params)` returns a pytree of the same structure whose leaves name each parameter's
    group; `schedule` lists group names, cycled over optimizer steps: step s updates only the
    parameters of group `schedule[s % len(schedule)]` (the others keep their values and their
    optimizer state). The training loop reads it (`training.make_optimizer`); a model without it
    updates all parameters on every step.
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
      log_prob: (params, x, key) -> per-example log-density in nats, shape (batch,).
      sample: (params, key, n) -> n samples, shape (n, *event_shape).
      log_prob_se: standard error of `log_prob` common to all examples (e.g. from an AIS log Z),
        or None when the number carries none.
      info: static description (architecture, objective), reported by experiments.
      estimators: further named ways to get log p(x) from the same params (see `Estimator`);
        experiments report each as its own row, named `model/estimator`.
      parts: family-specific pieces for tests and analysis (a flow's `bijector(params)`, an
        energy model's `energy(params, x)`); experiments never rely on them.
      update_groups: optional `UpdateGroups`: parameters the training loop updates in turns
        (alternating two-player updates); None updates every parameter on every step.
    """

    name: str
    event_shape: tuple[int, ...]
    kind: Kind
    init: Callable[[Array, Array], Params]
    loss: Callable[[Params, Array, Array], tuple[Array, dict]]
    log_prob: Callable[[Params, Array, Array], Array]
    sample: Callable[[Params, Array, int], Array]
    log_prob_se: float | None = None
    info: dict = dataclasses.field(default_factory=dict)
    estimators: dict[str, Estimator] = dataclasses.field(default_factory=dict)
    parts: dict = dataclasses.field(default_factory=dict)
    update_groups: UpdateGroups | None = None

    @property
    def num_dims(self) -> int:
        return math.prod(self.event_shape)

    def replace(self, **changes) -> Model:
        return dataclasses.replace(self, **changes)

    def views(self) -> list[tuple[str, Model]]:
        """(row name, model) for the primary log_prob and then each estimator, as Models."""
        out = [(self.name, self)]
        for est_name, est in self.estimators.items():
            out.append(
                (f"{self.name}/{est_name}", self.replace(kind=est.kind, log_prob=est.log_prob, estimators={}))
            )
        return out


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


def nll_loss(log_prob: Callable[[Params, Array, Array], Array]):
    """Maximum-likelihood loss from a per-example log_prob: mean NLL in nats."""

    def loss(params, batch, key):
        nll = -jnp.mean(log_prob(params, batch, key))
        return nll, {"nll": nll}

    return loss


def distribution_model(
    name: str,
    event_shape: tuple[int, ...],
    init: Callable[[Array, Array], Params],
    distribution: Callable[[Params], Any],
    info: dict,
    parts: dict | None = None,
    batched: bool = False,
) -> Model:
    """An exact-likelihood Model from `distribution(params)`, a distrax distribution of ONE example.

    log_prob and sample are written for one example and vmapped here, once, over the batch;
    the loss is the mean negative log-likelihood. `batched=True`: the distribution already
    broadcasts over leading batch axes (distrax's event_ndims), and is called on the whole batch
    instead: for networks whose fast form needs to see the batch (the flows' feature-major
    conditioners; vmapping their custom VJP would turn each weight gradient into per-example
    outer products).
    """

    def log_prob(params, x, key=None):
        if batched:
            return distribution(params).log_prob(x)
        return jax.vmap(distribution(params).log_prob)(x)

    def sample(params, key, n):
        dist = distribution(params)
        if batched:
            return dist.sample(seed=key, sample_shape=(n,))
        return jax.vmap(lambda k: dist.sample(seed=k))(jax.random.split(key, n))

    return Model(
        name=name,
        event_shape=tuple(event_shape),
        kind=Kind.EXACT,
        init=init,
        loss=nll_loss(log_prob),
        log_prob=log_prob,
        sample=sample,
        info=info,
        parts={"distribution": distribution, **(parts or {})},
    )


def evaluate_nll(model: Model, params: Params, x: Array, key: Array, batch_size: int = 2048):
    """Mean negative log_prob over `x` (nats) and its standard error, in memory-bounded chunks.

    Returns (mean, standard_error, per_example_nll as a numpy array).
    """
    import numpy as np

    check_batch(x, model.event_shape)
    n = x.shape[0]
    batch_size = min(batch_size, n)
    pad = (-n) % batch_size  # pad the last chunk so every chunk has one static shape
    xp = jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]) if pad else jnp.asarray(x)
    lp = jax.jit(model.log_prob)
    out = [
        np.asarray(-lp(params, xp[s : s + batch_size], jax.random.fold_in(key, i)))
        for i, s in enumerate(range(0, n + pad, batch_size))
    ]
    nll = np.concatenate(out)[:n]
    if not np.all(np.isfinite(nll)):
        bad = int(np.sum(~np.isfinite(nll)))
        raise FloatingPointError(f"{model.name}: {bad} of {n} test points have a non-finite log_prob")
    return float(nll.mean()), float(nll.std(ddof=1) / np.sqrt(n)), nll
