"""The one training loop every model uses.

    result = train(model, train_data, TrainConfig(steps=3000), workdir="results/run", eval_data=test)

- The whole optimizer step is jitted, and `steps_per_dispatch` steps run inside one `lax.scan` per
  dispatch with the train state donated, so small models are not bound by Python dispatch.
- Batches are drawn on the device from the device-resident training data (an array, or a pytree such
  as {"x": x, "context": c} for conditional models) with the key `fold_in(data_key, step)`; the loss
  gets `fold_in(loss_key, step)`. Everything a step does is a function of (params, step), so a
  resumed run reproduces an unbroken one bit for bit.
- The host reads metrics one dispatch late (no sync inside the loop), checks them for NaN/inf, and
  hands them to the `Monitor` (metrics.jsonl, TensorBoard, progress, curves.png).
- Orbax checkpoints every `checkpoint_every` steps and at the end; `resume=True` continues from the
  last one. A non-finite loss stops the run naming the step and that checkpoint; Ctrl-C saves one.
- Data parallel over the devices of a "data" mesh (`placement`), compiled with the CPU options of
  `compiler`, optimizer from `optimizer`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gen_jax.core import Kind, Model, check_batch
from gen_jax.training.checkpoint import Checkpointer, truncate_jsonl
from gen_jax.training.compiler import CompiledOnFirstCall, compiler_options_for, step_flops
from gen_jax.training.config import TrainConfig
from gen_jax.training.monitor import Monitor
from gen_jax.training.optimizer import learning_rate, make_optimizer
from gen_jax.training.placement import (
    data_mesh,
    first_examples,
    global_training_data,
    num_examples,
    replicate,
)
from gen_jax.training.stream import Blocks, Stream

Array = jax.Array


@flax.struct.dataclass
class TrainState:
    """Step, parameters, optimizer state, optional EMA of the parameters and the loss's carried state."""

    step: Array
    params: Any
    opt_state: Any
    ema_params: Any = None
    aux: Any = None

    @property
    def eval_params(self):
        """The parameters to evaluate with: the EMA when one is kept."""
        return self.params if self.ema_params is None else self.ema_params


@dataclasses.dataclass
class TrainResult:
    """What `train` returns: the final state, every logged row, and timings."""

    state: TrainState
    history: list[dict]  # every logged row (train and eval), as written to metrics.jsonl
    train_seconds: float  # wall time of the whole run's training (across resumes), compilation included
    first_dispatch_seconds: float  # time until the first dispatch of this call finished (compilation)
    steps_per_sec: float  # steady state: steps after the first dispatch / their time
    resumed_from: int | None = None
    best: dict | None = None  # early stopping: {"step", "eval_nll", "params"} of the best evaluation

    @property
    def params(self):
        """The parameters to use: the best evaluation's with early stopping, else the last (EMA when kept)."""
        return self.best["params"] if self.best is not None else self.state.eval_params


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


def _data_x(data):
    return data["x"] if isinstance(data, dict) else data


def init_state(model: Model, key: Array, example_batch, optimizer, ema: bool) -> TrainState:
    """The state before the first step: `model.init` on the example batch, fresh optimizer state."""
    params = model.init(key, example_batch)
    aux = model.aux_state.init(jax.random.fold_in(key, 1), params, example_batch) if model.aux_state else None
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=optimizer.init(params),
        ema_params=jax.tree_util.tree_map(jnp.copy, params) if ema else None,
        aux=aux,
    )


def _global_norm(tree) -> Array:
    return jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree_util.tree_leaves(tree)))


def make_train_step(model: Model, optimizer, ema_decay: float | None, lr_schedule=None):
    """(state, batch, key) -> (state, metrics): one optimizer step on `model.loss` (with the carried
    state of a model that has `aux_state`)."""

    def train_step(state: TrainState, batch, key):
        if model.aux_state is not None:
            (loss, (metrics, aux)), grads = jax.value_and_grad(model.loss, has_aux=True)(
                state.params, batch, key, state.aux
            )
        else:
            (loss, metrics), grads = jax.value_and_grad(model.loss, has_aux=True)(state.params, batch, key)
            aux = None
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema = state.ema_params
        if ema is not None:
            ema = optax.incremental_update(params, ema, 1.0 - ema_decay)
        metrics = {**metrics, "loss": loss, "grad_norm": _global_norm(grads)}
        if lr_schedule is not None:
            metrics["lr"] = jnp.asarray(lr_schedule(state.step), jnp.float32)
        new = state.replace(step=state.step + 1, params=params, opt_state=opt_state, ema_params=ema, aux=aux)
        return new, metrics

    return train_step


def random_batches(batch_size: int) -> Callable[[Any, Array, Array], Any]:
    """(data, key, step) -> a batch drawn uniformly with replacement, on the device (every leaf of a
    data pytree at the same indices)."""

    def batch_fn(data, key, step):
        idx = jax.random.randint(key, (batch_size,), 0, num_examples(data))
        return jax.tree_util.tree_map(lambda a: jnp.take(a, idx, axis=0), data)

    return batch_fn


def sequential_batches(batch_size: int) -> Callable[[Any, Array, Array], Any]:
    """(data, key, step) -> the step-th run of `batch_size` consecutive examples (wrapping around):
    the examples in the order given, a contiguous slice per step (no gather). To train on a fixed
    batch order, e.g. the one other libraries see in a side-by-side benchmark, pass
    `data[order].reshape(-1, *event_shape)` with `order` (steps, batch_size) as the training data."""

    def batch_fn(data, key, step):
        n = num_examples(data)
        if n % batch_size:
            raise ValueError(
                f"sequential batches of {batch_size} need a multiple of {batch_size} examples, got {n}; "
                f"drop the remainder (data[: {n // batch_size * batch_size}])"
            )
        start = (step % (n // batch_size)) * batch_size
        return jax.tree_util.tree_map(
            lambda a: jax.lax.dynamic_slice_in_dim(a, start, batch_size, axis=0), data
        )

    return batch_fn


def make_multi_step(train_step, batch_fn, num_steps: int, seed: int, mesh: Mesh | None = None):
    """A jitted function running `num_steps` optimizer steps in one `lax.scan`.

    (state, data) -> (state, stacked metrics); the state's buffers are donated. With a mesh of
    several devices, each batch is sharded along its "data" axis (data parallelism); the
    parameters stay replicated and XLA inserts the gradient all-reduce. The step is the same code
    on 1 or many devices.
    """
    base = jax.random.key(seed)
    sharded = mesh is not None and mesh.size > 1
    batch_sharding = NamedSharding(mesh, PartitionSpec("data")) if sharded else None

    def run(state, data):
        def body(state, _):
            data_key, loss_key = jax.random.split(jax.random.fold_in(base, state.step))
            batch = batch_fn(data, data_key, state.step)
            if batch_sharding is not None:
                batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
            return train_step(state, batch, loss_key)

        return jax.lax.scan(body, state, None, length=num_steps)

    if batch_sharding is None:
        return jax.jit(run, donate_argnums=0)
    # state and metrics stay replicated (every host can read the metrics; no host holds a shard)
    return jax.jit(run, donate_argnums=0, out_shardings=NamedSharding(mesh, PartitionSpec()))


def restore_params(model: Model, workdir: str | Path, example_batch, cfg: TrainConfig | None = None):
    """Evaluation parameters (EMA when kept) of the last checkpoint in `workdir`."""
    cfg = cfg or TrainConfig(**json.loads((Path(workdir) / "train_config.json").read_text()))
    ckpt = Checkpointer(Path(workdir) / "checkpoints", cfg.max_to_keep)
    if ckpt.latest_step() is None:
        raise FileNotFoundError(f"no checkpoint under {Path(workdir) / 'checkpoints'}; train first")
    optimizer = make_optimizer(cfg, model.update_groups)
    like = init_state(model, jax.random.key(cfg.seed), example_batch, optimizer, cfg.ema_decay is not None)
    state = ckpt.restore(like)
    ckpt.close()
    return state.eval_params


def _to_host(tree) -> dict:
    return {k: np.asarray(v) for k, v in jax.device_get(tree).items()}


def _open_workdir(workdir: Path | None, cfg: TrainConfig, state: TrainState, resume: bool, primary: bool):
    """(checkpointer, state, resumed_from step, seconds trained before) for a run's directory."""
    if workdir is None:
        return None, state, None, 0.0
    workdir.mkdir(parents=True, exist_ok=True)
    metrics_path = workdir / "metrics.jsonl"
    ckpt = Checkpointer(workdir / "checkpoints", cfg.max_to_keep)
    last = ckpt.latest_step()
    resumed_from, elapsed = None, 0.0
    if last is not None and resume:
        state = ckpt.restore(state)
        resumed_from = int(state.step)
        elapsed = truncate_jsonl(metrics_path, resumed_from)
    elif last is not None:
        raise FileExistsError(
            f"{workdir} already holds checkpoints (last step {last}): pass resume=True to continue that run, "
            "or choose an empty workdir."
        )
    elif primary:
        for stale in (metrics_path, workdir / "train.log"):
            stale.unlink(missing_ok=True)
    if primary:
        (workdir / "train_config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=1))
    return ckpt, state, resumed_from, elapsed


def _check_finite(model: Model, first: int, losses: np.ndarray, ckpt: Checkpointer | None) -> None:
    if np.all(np.isfinite(losses)):
        return
    i = int(np.argmin(np.isfinite(losses)))
    last = ckpt.latest_step() if ckpt is not None else None
    where = f"last good checkpoint: step {last} in {ckpt.directory}" if last else "no checkpoint"
    raise NonFiniteLossError(
        f"{model.name}: loss became {losses[i]} at step {first + i + 1} ({where}). Lower the learning "
        "rate, enable clip_norm, or check the data for NaN/inf."
    )


@dataclasses.dataclass
class _Dispatcher:
    """The compiled blocks of steps, and the host's view of the run's time and speed."""

    chunk: Any
    last_chunk: Any
    k: int
    remainder: int
    t0: float
    t_call: float
    first_dispatch_seconds: float | None = None
    steady_t0: float | None = None
    steps_at_steady: int = 0

    def run(self, state, data, step: int, total: int):
        fn, n = (self.chunk, self.k) if step + self.k <= total else (self.last_chunk, self.remainder)
        state, metrics = fn(state, data.block(step, n) if isinstance(data, Blocks) else data)
        if self.first_dispatch_seconds is None:
            jax.block_until_ready(metrics)
            self.first_dispatch_seconds = time.perf_counter() - self.t_call
            self.steady_t0, self.steps_at_steady = time.perf_counter(), step + n
        return state, metrics, n

    def rate(self, done: int) -> float:
        seconds = time.perf_counter() - self.steady_t0 if self.steady_t0 else 0.0
        return (
            (done - self.steps_at_steady) / seconds
            if seconds > 0 and done > self.steps_at_steady
            else math.nan
        )


def _dispatcher(model, optimizer, cfg, batch_fn, mesh, elapsed_before) -> _Dispatcher:
    train_step = make_train_step(model, optimizer, cfg.ema_decay, learning_rate(cfg))
    k = max(1, min(cfg.steps_per_dispatch, cfg.steps))  # steps=0: init only (a model fitted in init)
    choose = lambda lowered: compiler_options_for(cfg, step_flops(lowered), mesh)
    chunk = CompiledOnFirstCall(make_multi_step(train_step, batch_fn, k, cfg.seed, mesh), choose)
    remainder = cfg.steps % k
    last = (
        CompiledOnFirstCall(make_multi_step(train_step, batch_fn, remainder, cfg.seed, mesh), choose)
        if remainder
        else chunk
    )
    now = time.perf_counter()
    return _Dispatcher(chunk, last, k, remainder, now - elapsed_before, now)


def train(
    model: Model,
    train_data,
    cfg: TrainConfig,
    workdir: str | Path | None = None,
    eval_data=None,
    resume: bool = False,
    eval_fn: Callable[[Any], dict] | None = None,
    batch_fn: Callable[[Any, Array, Array], Any] | None = None,
    desc: str | None = None,
) -> TrainResult:
    """Train `model` on `train_data` (an array of examples, or {"x": x, "context": c}, or a
    `gen_jax.training.stream.Stream` of batches for data larger than memory) with `model.loss`.

    Args:
      workdir: where metrics.jsonl, train_config.json, train.log, tensorboard/, curves.png and
        checkpoints/ go; None keeps nothing on disk (no checkpoints, no resume).
      eval_data: held-out examples (same form as train_data); every `eval_every` steps and at the end
        the mean held-out NLL of `eval_size` of them is logged as `eval_nll`.
      resume: continue from the last checkpoint in `workdir` if there is one.
      eval_fn: params -> dict of extra metrics, called at the same times.
      batch_fn: (data, key, step) -> batch; default draws `batch_size` examples uniformly.

    Data parallelism: the batch is sharded over `cfg.num_devices` devices (all by default) along a
    "data" mesh axis; parameters and optimizer state are replicated, so the same global batch gives
    the same result on 1 or many devices. Several hosts: call `jax.distributed.initialize()` first
    (docs/scaling.md); every host runs this same code with ITS OWN SHARD of the training examples
    as `train_data` and the same `eval_data`; process 0 writes the metrics and the progress.
    """
    stream = train_data if isinstance(train_data, Stream) else None
    check_batch(_data_x(stream.example if stream else train_data), model.event_shape, "train_data")
    optimizer = make_optimizer(cfg, model.update_groups)
    mesh = data_mesh(cfg.num_devices)
    if cfg.batch_size % mesh.size:
        raise ValueError(
            f"the global batch of {cfg.batch_size} does not divide over {mesh.size} devices; use a batch "
            f"size that is a multiple of {mesh.size} (e.g. {mesh.size * -(-cfg.batch_size // mesh.size)}) "
            "or set num_devices"
        )
    train_data = global_training_data(stream.example if stream else train_data, mesh)
    primary = jax.process_index() == 0  # the one process that writes metrics, configs and progress
    init_key = jax.random.fold_in(jax.random.key(cfg.seed), 2**31 - 1)
    n_init = max(cfg.batch_size, min(num_examples(train_data), cfg.init_examples))
    n_init = min(n_init, num_examples(train_data)) if stream else n_init  # a stream's example: all it has
    state = init_state(
        model, init_key, first_examples(train_data, n_init, mesh), optimizer, cfg.ema_decay is not None
    )
    workdir = Path(workdir) if workdir is not None else None
    ckpt, state, resumed_from, elapsed_before = _open_workdir(workdir, cfg, state, resume, primary)
    if stream is not None:  # from here on the data are the stream's blocks, from the (resumed) step
        train_data, batch_fn = Blocks(stream, int(state.step)), sequential_batches(cfg.batch_size)
    evaluate = _make_evaluator(model, eval_data, cfg, eval_fn, mesh)
    if mesh.size > 1:  # replicate the state (the data is placed by global_training_data)
        state = replicate(state, mesh)
    runner = _dispatcher(
        model, optimizer, cfg, batch_fn or random_batches(cfg.batch_size), mesh, elapsed_before
    )
    monitor = Monitor(workdir, cfg.steps, int(state.step), desc or model.name, cfg, primary)
    stopper = _stopper(cfg) if cfg.patience and evaluate is not None else None
    state = _run_loop(model, cfg, state, train_data, runner, monitor, evaluate, ckpt, stopper)
    done = int(state.step)
    seconds = time.perf_counter() - runner.t0
    best = stopper.best if stopper is not None and stopper.best["params"] is not None else None
    return TrainResult(
        state,
        monitor.history,
        seconds,
        runner.first_dispatch_seconds or 0.0,
        runner.rate(done),
        resumed_from,
        best,
    )


class _EarlyStopping:
    """Keeps the parameters of the best held-out NLL; says to stop after `patience` evaluations
    without improvement, counted from `count_from` on (a decaying schedule's first half plateaus
    while the rate is high and then improves as it decays: earlier evaluations only keep the best)."""

    def __init__(self, patience: int, count_from: int = 0):
        self.patience, self.count_from, self.bad = patience, count_from, 0
        self.best = {"step": None, "eval_nll": float("inf"), "params": None}

    def update(self, step: int, row: dict, params) -> bool:
        """Record an evaluation; True when training should stop."""
        nll = row.get("eval_nll")
        if nll is None:
            return False
        if nll < self.best["eval_nll"]:
            params = jax.tree_util.tree_map(jnp.copy, params)  # the state's buffers are donated
            self.best, self.bad = {"step": step, "eval_nll": nll, "params": params}, 0
            return False
        self.bad += step >= self.count_from
        return self.bad >= self.patience


def _stopper(cfg: TrainConfig) -> _EarlyStopping:
    """Early stopping for `cfg`: under the cosine schedule, patience counts from half the steps on.
    RealNVP on the 10-D sine chain (/tmp sweep, closing note): stopped by a patience of 6 x 500 steps
    at step 17500 of 32000 (the best at 14500), 0.127 nats above the entropy; all 32000 steps, 0.015."""
    return _EarlyStopping(cfg.patience, cfg.steps // 2 if cfg.schedule == "cosine" else 0)


def _run_loop(
    model,
    cfg: TrainConfig,
    state,
    train_data,
    runner: _Dispatcher,
    monitor: Monitor,
    evaluate,
    ckpt,
    stopper=None,
):
    """Dispatch blocks of steps until cfg.steps (or the time limit); evaluate, checkpoint, log."""
    k = runner.k

    def every(n: int | None, step: int) -> bool:  # does the dispatch ending at `step` cross a multiple of n?
        return bool(n) and (step // n) > ((step - k) // n)

    pending = None  # (first_step, metrics) of the previous dispatch, read one dispatch late

    def consume(pending) -> None:
        first, metrics = pending
        m = _to_host(metrics)
        _check_finite(model, first, m["loss"], ckpt)
        row = {"step": first + len(m["loss"]), **{name: float(np.mean(v)) for name, v in m.items()}}
        row["time"] = round(time.perf_counter() - runner.t0, 3)
        row["steps_per_sec"] = runner.rate(row["step"])
        monitor.log(row, advance=len(m["loss"]))

    try:
        step = int(state.step)
        while step < cfg.steps:
            state, metrics, n = runner.run(state, train_data, step, cfg.steps)
            if pending is not None:
                consume(pending)
            pending, step = (step, metrics), step + n
            out_of_time = cfg.time_limit_s is not None and time.perf_counter() - runner.t0 > cfg.time_limit_s
            end = step == cfg.steps or out_of_time
            stop = False
            if evaluate is not None and (every(cfg.eval_every, step) or end):
                consume(pending)
                pending = None
                row = {"step": step, **evaluate(state.eval_params)}
                monitor.log(row)
                stop = stopper is not None and stopper.update(step, row, state.eval_params)
                out_of_time = out_of_time or stop
                end = end or stop
            if ckpt is not None and (every(cfg.checkpoint_every, step) or end):
                if pending is not None:  # never checkpoint a state whose loss was not checked
                    consume(pending)
                    pending = None
                ckpt.save(state)
            if out_of_time:
                break
        if pending is not None:
            consume(pending)
        if cfg.steps == 0:  # a model fitted in `init`: still evaluated and checkpointed
            if evaluate is not None:
                monitor.log({"step": 0, **evaluate(state.eval_params)})
            if ckpt is not None:
                ckpt.save(state)
        jax.block_until_ready(state)
    except KeyboardInterrupt:
        if ckpt is not None:  # keep finished work: the state here is whole (dispatches are atomic)
            ckpt.save(jax.block_until_ready(state))
            ckpt.wait()
        raise
    finally:
        monitor.close()
        if ckpt is not None:
            ckpt.wait()
            ckpt.close()
    return state


def _make_evaluator(model: Model, eval_data, cfg: TrainConfig, eval_fn, mesh: Mesh | None = None):
    """params -> {"eval_nll": ..., **eval_fn(params)} at evaluation times, or None."""
    if eval_data is not None and model.kind == Kind.NONE:
        eval_data = None  # no density to evaluate (implicit model); eval_fn may still report metrics
    if eval_data is None and eval_fn is None:
        return None
    fns = []
    if eval_data is not None:
        check_batch(_data_x(eval_data), model.event_shape, "eval_data")
        held_out = jax.tree_util.tree_map(lambda a: jnp.asarray(a[: cfg.eval_size]), eval_data)
        if mesh is not None and jax.process_count() > 1:  # every host passes the same held-out set
            held_out = replicate(held_out, mesh)
        key = jax.random.key(cfg.seed + 1)
        if isinstance(held_out, dict):
            nll = jax.jit(
                lambda p: -jnp.mean(model.log_prob(p, held_out["x"], key, context=held_out["context"]))
            )
        else:
            nll = jax.jit(lambda p: -jnp.mean(model.log_prob(p, held_out, key)))
        fns.append(lambda params: {"eval_nll": float(nll(params))})
    if eval_fn is not None:
        fns.append(eval_fn)

    def evaluate(params) -> dict:
        out = {}
        for fn in fns:
            out.update(fn(params))
        return out

    return evaluate
