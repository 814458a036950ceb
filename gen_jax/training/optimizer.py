"""The optimizer of the training loop: Adam(W) with a schedule and clipping, parameter groups updated
in turns (two-player models), and parameters that are never updated (fitted statistics)."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import optax

from gen_jax.core import UpdateGroups
from gen_jax.core.model import FROZEN_KEYS
from gen_jax.training.config import TrainConfig


def learning_rate(cfg: TrainConfig) -> optax.Schedule:
    """The learning rate at each step: warmup, then cosine decay or constant."""
    if cfg.schedule == "constant":
        if not cfg.warmup_steps:
            return optax.constant_schedule(cfg.lr)
        warmup = optax.linear_schedule(0.0, cfg.lr, cfg.warmup_steps)
        return optax.join_schedules([warmup, optax.constant_schedule(cfg.lr)], [cfg.warmup_steps])
    return optax.warmup_cosine_decay_schedule(
        0.0, cfg.lr, min(cfg.warmup_steps, cfg.steps - 1), cfg.steps, cfg.lr * cfg.end_lr_fraction
    )


def _adam(cfg: TrainConfig) -> optax.GradientTransformation:
    lr = learning_rate(cfg)
    if cfg.weight_decay > 0:
        opt = optax.adamw(lr, b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay)
    else:
        opt = optax.adam(lr, b1=cfg.b1, b2=cfg.b2)
    return optax.chain(optax.clip_by_global_norm(cfg.clip_norm), opt) if cfg.clip_norm else opt


def frozen_labels(params):
    """'frozen' for every leaf under a FROZEN_KEYS dict entry, else 'train'."""

    def label(path, _):
        keys = {getattr(p, "key", None) for p in path}
        return "frozen" if keys & set(FROZEN_KEYS) else "train"

    return jax.tree_util.tree_map_with_path(label, params)


def make_optimizer(cfg: TrainConfig, groups: UpdateGroups | None = None) -> optax.GradientTransformation:
    """Adam(W) with the configured schedule and clipping; `groups` (a model's `update_groups`)
    updates parameter groups in turns (see `grouped_optimizer`). Frozen subtrees (FROZEN_KEYS) are
    never updated (zero updates, no optimizer state)."""
    inner = grouped_optimizer(cfg, groups) if groups is not None else _adam(cfg)
    return optax.multi_transform({"train": inner, "frozen": optax.set_to_zero()}, frozen_labels)


def grouped_optimizer(cfg: TrainConfig, groups: UpdateGroups) -> optax.GradientTransformation:
    """One optimizer per parameter group (its own clipping and moments), each applied only on its
    turns of `groups.schedule` and zero elsewhere (`optax.transforms.conditionally_mask`, keyed on
    the step count it holds in the optimizer state). A group's learning-rate schedule spans its
    share of `cfg.steps`, so every group's schedule ends with the run."""
    period = len(groups.schedule)
    transforms = {}
    for name in dict.fromkeys(groups.schedule):
        turns = tuple(i for i, g in enumerate(groups.schedule) if g == name)
        share = len(turns) / period
        inner = _adam(
            dataclasses.replace(
                cfg,
                steps=max(1, math.ceil(cfg.steps * share)),
                warmup_steps=math.ceil(cfg.warmup_steps * share),
            )
        )

        def active(step, turns=turns):
            return jnp.any(step % period == jnp.asarray(turns, jnp.int32))

        transforms[name] = optax.transforms.conditionally_mask(inner, active)
    return optax.multi_transform(transforms, groups.labels)
