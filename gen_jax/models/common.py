"""Pieces the family builders share: the maximum-likelihood loss and exact models from distrax."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from gen_jax.core import Kind, Model

Array = jax.Array
Params = Any


def nll_loss(log_prob: Callable[..., Array]):
    """Maximum-likelihood loss from a per-example log_prob: mean NLL in nats. A batch is an array of
    examples, or `{"x": x, "context": c}` for a conditional model."""

    def loss(params, batch, key):
        if isinstance(batch, dict):
            nll = -jax.numpy.mean(log_prob(params, batch["x"], key, context=batch["context"]))
        else:
            nll = -jax.numpy.mean(log_prob(params, batch, key))
        return nll, {"nll": nll}

    return loss


def distribution_model(
    name: str,
    event_shape: tuple[int, ...],
    init: Callable[[Array, Array], Params],
    distribution: Callable[..., Any],
    info: dict,
    internals: dict | None = None,
    batched: bool = False,
    context_shape: tuple[int, ...] | None = None,
) -> Model:
    """An exact-likelihood Model from `distribution(params)`, a distrax distribution of ONE example.

    log_prob and sample are written for one example and vmapped here, once, over the batch;
    the loss is the mean negative log-likelihood. `batched=True`: the distribution already
    broadcasts over leading batch axes (distrax's event_ndims), and is called on the whole batch
    instead: for networks whose fast form needs to see the batch (the flows' feature-major
    conditioners). With `context_shape`, `distribution(params, context)` takes the batch of
    contexts (batched=True only) and `sample` draws one example per context row.
    """
    if context_shape is not None and not batched:
        raise ValueError("a conditional distribution_model needs batched=True")

    def log_prob(params, x, key=None, context=None):
        if context_shape is not None:
            return distribution(params, _context(context, x.shape[0])).log_prob(x)
        if batched:
            return distribution(params).log_prob(x)
        return jax.vmap(distribution(params).log_prob)(x)

    def sample(params, key, n, context=None):
        if context_shape is not None:
            dist = distribution(params, _context(context, n))  # a distrax.Transformed of a batch of contexts
            return dist.bijector.forward(dist.distribution.sample(seed=key, sample_shape=(n,)))
        dist = distribution(params)
        if batched:
            return dist.sample(seed=key, sample_shape=(n,))
        return jax.vmap(lambda k: dist.sample(seed=k))(jax.random.split(key, n))

    def _context(context, n):
        if context is None:
            raise ValueError(
                f"{name} is conditional: pass context=c, an array of shape (n, *{context_shape})"
            )
        context = jax.numpy.asarray(context, jax.numpy.float32)
        if context.shape != (n, *context_shape):
            raise ValueError(f"{name}: context of shape {context.shape}, expected {(n, *context_shape)}")
        return context

    return Model(
        name=name,
        event_shape=tuple(event_shape),
        kind=Kind.EXACT,
        init=init,
        loss=nll_loss(log_prob),
        log_prob=log_prob,
        sample=sample,
        info=info,
        internals={"distribution": distribution, **(internals or {})},
        context_shape=context_shape,
    )
