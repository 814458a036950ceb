"""Runs keyed by their configuration: a run is reused or continued only when its config is the same.

    spec = RunSpec("nsf", (2,), options, train_cfg, data={"dataset": "moons", "n_train": 50000, "seed": 0})
    run = train_or_reuse(spec, Path("results/toy2d"), data.train, eval_data=data.test)
    run.model, run.params, run.train_seconds, run.steps, run.reused

A run's directory is `<root>/runs/<dataset>/<model>-<hash>`, the hash of its resolved `RunSpec`
(model, every option, the training config, the data it trains on), and holds `config.json` (that
spec), the checkpoints, metrics.jsonl, train.log, TensorBoard files, curves.png and `done.json` once
finished. The same spec finds the same directory: a finished run is restored (no training), an
interrupted one continues from its last checkpoint, and any change to the config makes a new
directory (never the old numbers). `evaluation_cache` keys a run's evaluations by their own config
the same way, so changing only how a model is evaluated re-evaluates without retraining.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp

from gen_jax.core import ConfigError, Model
from gen_jax.evaluation.config import config_hash, jsonable
from gen_jax.models import make_model
from gen_jax.training import TrainConfig, init_state, make_optimizer, train
from gen_jax.training.checkpoint import Checkpointer

# TrainConfig fields that change how a run is shown or placed, not what it computes: not in its key
RUNTIME_FIELDS = frozenset(
    {"progress", "progress_every_s", "tensorboard", "max_to_keep", "num_devices", "cpu_compiler_options"}
)
BEST_PARAMS = "best_params.msgpack"  # early stopping's best parameters (the run's evaluation parameters)


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Everything that determines a trained model: which model, its options, how it trains, on what."""

    model: str
    event_shape: tuple[int, ...]
    options: dict
    train: TrainConfig
    data: dict  # what the model trains on: {"dataset": name, ...} (sizes, seed, file digests)
    context_dim: int | None = None

    @property
    def key(self) -> str:
        """The hash that names the run's directory: of `keyed()`."""
        return config_hash(self.keyed())

    def keyed(self) -> dict:
        """The spec as JSON without the training fields that cannot change the trained parameters
        (`RUNTIME_FIELDS`: progress display, TensorBoard, checkpoints kept, devices, compiler options)."""
        value = jsonable(self)
        value["train"] = {k: v for k, v in value["train"].items() if k not in RUNTIME_FIELDS}
        return value

    def build(self) -> Model:
        """The model, built from the registry with the spec's options."""
        extra = {"context_dim": self.context_dim} if self.context_dim else {}
        return make_model(self.model, self.event_shape, **self.options, **extra)


@dataclasses.dataclass
class Run:
    """A trained model: its parameters, where it lives, and how its training went."""

    spec: RunSpec
    model: Model
    params: Any
    workdir: Path
    train_seconds: float
    steps: int
    steps_per_sec: float
    first_dispatch_seconds: float
    reused: bool


def make_spec(
    name: str,
    event_shape: tuple[int, ...],
    model_options: dict,
    train: TrainConfig,
    train_overrides: dict,
    data: dict,
    seed: int,
    context_dim: int | None = None,
) -> RunSpec:
    """The RunSpec of model `name` in a study: its options, the study's training config with the
    model's overrides and the study's seed, and what it trains on."""
    fields = {**dataclasses.asdict(train), **(train_overrides or {}).get(name, {}), "seed": seed}
    return RunSpec(
        name,
        tuple(event_shape),
        (model_options or {}).get(name, {}),
        TrainConfig(**fields),
        data,
        context_dim,
    )


def _keyed(saved: dict) -> dict:
    return {**saved, "train": {k: v for k, v in saved["train"].items() if k not in RUNTIME_FIELDS}}


def run_dir(root: str | Path, spec: RunSpec) -> Path:
    """<root>/runs/<dataset>/<model>-<hash>."""
    dataset = str(spec.data.get("dataset", "data")).replace("/", "_")
    return Path(root) / "runs" / dataset / f"{spec.model}-{spec.key}"


def _example(train_data, spec: RunSpec):
    n = max(spec.train.batch_size, min(len(_leaf(train_data)), spec.train.init_examples))
    return jax.tree_util.tree_map(lambda a: a[:n], train_data)


def _leaf(data):
    return data["x"] if isinstance(data, dict) else data


def restore(model: Model, spec: RunSpec, workdir: Path, example):
    """The evaluation parameters of the last checkpoint in `workdir` (structure from an abstract init
    when the model's init can be traced, else from a real one)."""
    cfg = spec.train
    optimizer = make_optimizer(cfg, model.update_groups)
    make = lambda: init_state(model, jax.random.key(cfg.seed), example, optimizer, cfg.ema_decay is not None)
    try:
        like = jax.eval_shape(make)
    except Exception:  # an init that needs concrete values (host-side counting): build it for real
        like = make()
    best = workdir / BEST_PARAMS
    if best.exists():  # early stopping: the best held-out NLL's parameters, not the last checkpoint's
        like_params = like.eval_params
        state = flax.serialization.msgpack_restore(best.read_bytes())
        return jax.tree_util.tree_map(jnp.asarray, flax.serialization.from_state_dict(like_params, state))
    ckpt = Checkpointer(workdir / "checkpoints", cfg.max_to_keep)
    if ckpt.latest_step() is None:
        raise FileNotFoundError(f"no checkpoint under {workdir / 'checkpoints'}; train first")
    state = ckpt.restore(like)
    ckpt.close()
    return state.eval_params


def train_or_reuse(
    spec: RunSpec,
    root: str | Path,
    train_data,
    eval_data=None,
    fresh: bool = False,
    desc: str | None = None,
    eval_fn=None,
    batch_fn=None,
) -> Run:
    """Train the spec's model in its keyed directory, or restore it if that run finished (see the
    module docstring). `fresh=True` deletes the directory first."""
    workdir = run_dir(root, spec)
    if fresh and workdir.exists():
        shutil.rmtree(workdir)
    saved, wanted = workdir / "config.json", jsonable(spec)
    if saved.exists() and _keyed(json.loads(saved.read_text())) != spec.keyed():
        raise ConfigError(
            f"{workdir} holds a run of another config (hash collision?); delete it or pass --fresh"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(wanted, indent=1, sort_keys=True) + "\n")
    model = spec.build()
    done = workdir / "done.json"
    if done.exists():
        info = json.loads(done.read_text())
        params = restore(model, spec, workdir, _example(train_data, spec))
        return Run(
            spec,
            model,
            params,
            workdir,
            info["train_seconds"],
            info["steps"],
            info["steps_per_sec"],
            info["first_dispatch_seconds"],
            reused=True,
        )
    result = train(
        model,
        train_data,
        spec.train,
        workdir,
        eval_data=eval_data,
        resume=True,
        desc=desc or f"{spec.data.get('dataset', '')}/{spec.model}",
        eval_fn=eval_fn,
        batch_fn=batch_fn,
    )
    info = dict(
        train_seconds=result.train_seconds,
        steps=int(result.state.step),
        steps_per_sec=result.steps_per_sec,
        first_dispatch_seconds=result.first_dispatch_seconds,
        resumed_from=result.resumed_from,
    )
    if result.best is not None:  # early stopping: keep the best parameters beside the checkpoints
        state_dict = flax.serialization.to_state_dict(jax.device_get(result.best["params"]))
        (workdir / BEST_PARAMS).write_bytes(flax.serialization.msgpack_serialize(state_dict))
        info.update(best_step=result.best["step"], best_eval_nll=result.best["eval_nll"])
    if info["steps"] >= spec.train.steps:  # a run stopped by its time limit is finished too
        done.write_text(json.dumps(jsonable(info), indent=1) + "\n")
    elif spec.train.time_limit_s is not None or result.best is not None:
        why = "stopped_early" if result.best is not None else "stopped_by_time_limit"
        done.write_text(json.dumps(jsonable({**info, why: True}), indent=1) + "\n")
    return Run(
        spec,
        model,
        result.params,
        workdir,
        info["train_seconds"],
        info["steps"],
        info["steps_per_sec"],
        info["first_dispatch_seconds"],
        reused=False,
    )


def evaluation_cache(workdir: Path, name: str, config) -> Path:
    """The file holding a run's evaluation `name` under `config` (its hash in the file name)."""
    return workdir / f"eval-{name.replace('/', '_')}-{config_hash(config)}.json"


def cached(path: Path, compute):
    """json.loads(path) if it exists, else compute() saved there (as JSON)."""
    if path.exists():
        return json.loads(path.read_text())
    value = compute()
    path.write_text(json.dumps(jsonable(value), indent=1) + "\n")
    return value
