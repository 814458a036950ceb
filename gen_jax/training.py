"""The one training loop every model uses.

    result = train(model, train_data, TrainConfig(steps=3000), workdir="results/run", eval_data=test)

- The whole optimizer step is jitted, and `steps_per_dispatch` steps run inside one
  `lax.scan` per dispatch with the train state donated, so small models are not bound by
  Python dispatch.
- Batches are drawn on the device from the device-resident training array, with the
  key `fold_in(data_key, step)`; the loss gets `fold_in(loss_key, step)`. Everything a
  step does is a function of (params, step), so a resumed run reproduces an unbroken one.
- The host only reads metrics one dispatch late (no sync inside the loop), checks them for
  NaN/inf, feeds the tqdm bar and appends them to `metrics.jsonl`.
- Orbax checkpoints every `checkpoint_every` steps and at the end; `resume=True` continues
  from the last one. A non-finite loss stops the run naming the step and that checkpoint.
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

from gen_jax.models.base import Kind, Model, UpdateGroups, check_batch

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    steps: int = 3000
    batch_size: int = 512
    lr: float = 1e-3
    schedule: str = "cosine"  # "cosine" (warmup then cosine decay to end_lr_fraction * lr) or "constant"
    warmup_steps: int = 100
    end_lr_fraction: float = 0.0
    clip_norm: float | None = 1.0  # global-norm gradient clipping; None turns it off
    weight_decay: float = 0.0  # decoupled (AdamW) when > 0
    b1: float = 0.9
    b2: float = 0.999
    ema_decay: float | None = None  # keep an exponential moving average of params
    steps_per_dispatch: int = 100  # optimizer steps per jitted lax.scan
    eval_every: int | None = None  # steps; rounded up to whole dispatches
    eval_size: int = 2048  # held-out examples per periodic evaluation
    checkpoint_every: int | None = 1000  # steps; rounded up to whole dispatches
    max_to_keep: int = 2
    time_limit_s: float | None = None  # stop (with a checkpoint) after this much training time
    seed: int = 0
    progress: bool = True
    init_examples: int = 1024  # training examples `model.init` sees (a data-dependent init may want all)
    num_devices: int | None = None  # data-parallel over this many devices (None: all visible devices)
    # XLA options for compiling the train step on CPU: None picks them by the step's size
    # (`compiler_options_for`), {} is XLA's defaults, any other dict is used as given
    cpu_compiler_options: dict | None = None

    def __post_init__(self):
        if self.steps < 0 or self.batch_size < 1 or self.steps_per_dispatch < 1:
            raise ValueError(f"steps must be >= 0, batch_size and steps_per_dispatch >= 1: {self}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"unknown schedule {self.schedule!r}; choose 'cosine' or 'constant'")


@flax.struct.dataclass
class TrainState:
    step: Array
    params: Any
    opt_state: Any
    ema_params: Any = None

    @property
    def eval_params(self):
        """The parameters to evaluate with: the EMA when one is kept."""
        return self.params if self.ema_params is None else self.ema_params


@dataclasses.dataclass
class TrainResult:
    state: TrainState
    history: list[dict]  # every logged row (train and eval), as written to metrics.jsonl
    train_seconds: float  # wall time of this call's training, compilation included
    first_dispatch_seconds: float  # time until the first dispatch finished (mostly compilation)
    steps_per_sec: float  # steady state: steps after the first dispatch / their time
    resumed_from: int | None = None

    @property
    def params(self):
        return self.state.eval_params


class NonFiniteLossError(FloatingPointError):
    pass


def make_optimizer(cfg: TrainConfig, groups: UpdateGroups | None = None) -> optax.GradientTransformation:
    """Adam(W) with the configured schedule and clipping; `groups` (a model's `update_groups`)
    updates parameter groups in turns (see `grouped_optimizer`)."""
    if groups is not None:
        return grouped_optimizer(cfg, groups)
    if cfg.schedule == "constant":
        lr = cfg.lr
        if cfg.warmup_steps:
            warmup = optax.linear_schedule(0.0, cfg.lr, cfg.warmup_steps)
            lr = optax.join_schedules([warmup, optax.constant_schedule(cfg.lr)], [cfg.warmup_steps])
    else:
        lr = optax.warmup_cosine_decay_schedule(
            0.0, cfg.lr, min(cfg.warmup_steps, cfg.steps - 1), cfg.steps, cfg.lr * cfg.end_lr_fraction
        )
    if cfg.weight_decay > 0:
        opt = optax.adamw(lr, b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay)
    else:
        opt = optax.adam(lr, b1=cfg.b1, b2=cfg.b2)
    return optax.chain(optax.clip_by_global_norm(cfg.clip_norm), opt) if cfg.clip_norm else opt


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
        inner = make_optimizer(
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


def init_state(model: Model, key: Array, example_batch: Array, optimizer, ema: bool) -> TrainState:
    params = model.init(key, example_batch)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=optimizer.init(params),
        ema_params=jax.tree_util.tree_map(jnp.copy, params) if ema else None,
    )


def _global_norm(tree) -> Array:
    return jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree_util.tree_leaves(tree)))


def make_train_step(model: Model, optimizer, ema_decay: float | None):
    """(state, batch, key) -> (state, metrics): one optimizer step on `model.loss`."""

    def train_step(state: TrainState, batch, key):
        (loss, metrics), grads = jax.value_and_grad(model.loss, has_aux=True)(state.params, batch, key)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema = state.ema_params
        if ema is not None:
            ema = optax.incremental_update(params, ema, 1.0 - ema_decay)
        metrics = {**metrics, "loss": loss, "grad_norm": _global_norm(grads)}
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state, ema_params=ema), metrics

    return train_step


def random_batches(batch_size: int) -> Callable[[Array, Array, Array], Array]:
    """(data, key, step) -> a batch drawn uniformly with replacement, on the device."""

    def batch_fn(data, key, step):
        idx = jax.random.randint(key, (batch_size,), 0, data.shape[0])
        return jnp.take(data, idx, axis=0)

    return batch_fn


def sequential_batches(batch_size: int) -> Callable[[Array, Array, Array], Array]:
    """(data, key, step) -> the step-th run of `batch_size` consecutive examples (wrapping around):
    the examples in the order given, a contiguous slice per step (no gather). To train on a fixed
    batch order, e.g. the one other libraries see in a side-by-side benchmark, pass
    `data[order].reshape(-1, *event_shape)` with `order` (steps, batch_size) as the training data."""

    def batch_fn(data, key, step):
        n = data.shape[0]
        if n % batch_size:
            raise ValueError(
                f"sequential batches of {batch_size} need a multiple of {batch_size} examples, got {n}; "
                f"drop the remainder (data[: {n // batch_size * batch_size}])"
            )
        start = (step % (n // batch_size)) * batch_size
        return jax.lax.dynamic_slice_in_dim(data, start, batch_size, axis=0)

    return batch_fn


def data_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D mesh with axis "data" over the first `num_devices` devices (all by default)."""
    devices = jax.devices()
    n = len(devices) if num_devices is None else num_devices
    if not 1 <= n <= len(devices):
        raise ValueError(f"num_devices={num_devices}, but {len(devices)} devices are visible")
    return Mesh(np.asarray(devices[:n]), ("data",))


def replicate(tree, mesh: Mesh):
    """Every leaf of `tree` (host values, the same on every process) as one array replicated over the
    mesh. On one host a device_put; on several, each process supplies its own (identical) copy."""
    sharding = NamedSharding(mesh, PartitionSpec())
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def one(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree_util.tree_map(one, tree)


def global_training_data(local_data, mesh: Mesh):
    """The training array the loop draws batches from.

    One host: the whole array, replicated over the mesh's devices (each device draws from it).
    Several hosts (`jax.process_count() > 1`, after `jax.distributed.initialize()`): each process
    passes ONLY ITS OWN SHARD of the examples; the global array is their concatenation in process
    order, sharded along "data" (each device holds a slice of the examples), and a batch of global
    indices is gathered across devices by XLA. So the same global data gives the same batches, and
    the same parameters, on one host or many. Every process must pass the same number of examples,
    a multiple of its local device count.
    """
    if jax.process_count() == 1:
        return replicate(jnp.asarray(local_data), mesh) if mesh.size > 1 else jnp.asarray(local_data)
    from jax.experimental import multihost_utils

    local = np.asarray(local_data)
    counts = np.asarray(multihost_utils.process_allgather(np.asarray(len(local))))
    n_local_devices = len([d for d in mesh.devices.flat if d.process_index == jax.process_index()])
    if len(set(counts.tolist())) != 1 or len(local) % n_local_devices:
        raise ValueError(
            f"multi-host training: every process must pass the same number of training examples, a "
            f"multiple of its {n_local_devices} local devices; the processes passed {counts.tolist()}. "
            "Give each host an equal shard (e.g. drop the remainder: data[: n // k * k])."
        )
    return jax.make_array_from_process_local_data(NamedSharding(mesh, PartitionSpec("data")), local)


def _first_examples(data, n: int, mesh: Mesh) -> np.ndarray:
    """data[:n] as a host array on every process (the examples `model.init` sees): the same on
    every host, so a data-dependent init gives every host the same parameters."""
    if jax.process_count() == 1:
        return data[:n]
    take = jax.jit(lambda a: a[:n], out_shardings=NamedSharding(mesh, PartitionSpec()))
    return np.asarray(take(data))


# XLA:CPU compile options for small train steps. Its MLIR fusion emitters (its default since 2025)
# make steady-state steps faster (10-20% on the 2-D flows, 20% on the PixelCNN: `make
# bench-families`, variant `xla_emitters`) but hold ~170 MB more while compiling the NSF benchmark
# step and take 25% longer over it. A small model's run is a few seconds of steps after its
# compilation, so below SMALL_STEP_FLOPS per optimizer step gen_jax compiles with the earlier LLVM
# emitters; above it, with XLA's defaults. Options this XLA does not know are dropped with a warning.
CPU_COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False}
SMALL_STEP_FLOPS = 2.5e8  # the 2-D flows and EBMs: ~1e8; 2-D diffusion / GAN ~5e8; images 1e9 and up


def compiler_options_for(cfg: TrainConfig, flops: float | None, mesh: Mesh | None = None) -> dict:
    """The XLA options a train step of `flops` per optimizer step compiles with (see above)."""
    devices = mesh.devices.flat if mesh is not None else jax.devices()
    if next(iter(devices)).platform != "cpu":
        return {}
    if cfg.cpu_compiler_options is not None:
        return dict(cfg.cpu_compiler_options)
    small = flops is not None and math.isfinite(flops) and flops < SMALL_STEP_FLOPS
    return dict(CPU_COMPILER_OPTIONS) if small else {}


def step_flops(lowered) -> float | None:
    """XLA's flop count of a lowered computation (a scanned loop's body counted once), or None."""
    try:
        cost = lowered.cost_analysis()
    except Exception:  # not every backend or version offers it
        return None
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"]) if cost and "flops" in cost else None


class CompiledOnFirstCall:
    """A jitted function lowered and compiled at its first call with options chosen from the
    lowered program (`choose(lowered) -> dict`), so that the compilation still counts in the first
    dispatch's time. Options this XLA rejects are dropped with a warning (they are XLA debug
    options, which come and go)."""

    def __init__(self, jitted, choose: Callable[[Any], dict]):
        self.jitted, self.choose, self.compiled, self.options = jitted, choose, None, None

    def __call__(self, *args):
        if self.compiled is None:
            lowered = self.jitted.lower(*args)
            self.options = self.choose(lowered)
            try:
                self.compiled = lowered.compile(compiler_options=self.options or None)
            except jax.errors.JaxRuntimeError as e:
                if not self.options or "compile option" not in str(e):
                    raise
                import warnings

                warnings.warn(f"XLA rejected {self.options}: {e}; using its defaults", stacklevel=2)
                self.options = {}
                self.compiled = lowered.compile()
        return self.compiled(*args)


def make_multi_step(
    train_step,
    batch_fn,
    num_steps: int,
    seed: int,
    mesh: Mesh | None = None,
):
    """A jitted function running `num_steps` optimizer steps in one `lax.scan`.

    (state, data) -> (state, stacked metrics); the state's buffers are donated. With a mesh of
    several devices, each batch is sharded along its "data" axis (data parallelism); the
    parameters stay replicated and XLA inserts the gradient all-reduce. The step is the same code
    on 1 or many devices.
    """
    base = jax.random.key(seed)
    batch_sharding = (
        NamedSharding(mesh, PartitionSpec("data")) if mesh is not None and mesh.size > 1 else None
    )

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
    replicated = NamedSharding(mesh, PartitionSpec())
    return jax.jit(run, donate_argnums=0, out_shardings=replicated)


class Checkpointer:
    """Orbax checkpoints of the train state under `directory`."""

    def __init__(self, directory: Path, max_to_keep: int):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.directory = Path(directory).absolute()
        self.manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, state: TrainState) -> None:
        step = int(state.step)
        if self.manager.latest_step() != step:
            self.manager.save(step, args=self._ocp.args.StandardSave(state))

    def restore(self, like: TrainState, step: int | None = None) -> TrainState:
        step = self.manager.latest_step() if step is None else step
        abstract = jax.tree_util.tree_map(self._ocp.utils.to_shape_dtype_struct, like)
        return self.manager.restore(step, args=self._ocp.args.StandardRestore(abstract))

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()


def restore_params(model: Model, workdir: str | Path, example_batch: Array, cfg: TrainConfig | None = None):
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


def _truncate_jsonl(path: Path, last_step: int) -> float:
    """Drop rows written after `last_step` (by a run killed after its last checkpoint).

    Returns the training time recorded up to `last_step` (0.0 if none), so that time limits
    and reported times cover the whole run across resumes.
    """
    if not path.exists():
        return 0.0
    rows = [line for line in path.read_text().splitlines() if line.strip()]
    keep = [line for line in rows if json.loads(line).get("step", 0) <= last_step]
    path.write_text("".join(line + "\n" for line in keep))
    times = [json.loads(line)["time"] for line in keep if "time" in json.loads(line)]
    return float(times[-1]) if times else 0.0


def train(
    model: Model,
    train_data: Array,
    cfg: TrainConfig,
    workdir: str | Path | None = None,
    eval_data: Array | None = None,
    resume: bool = False,
    eval_fn: Callable[[Any], dict] | None = None,
    batch_fn: Callable[[Array, Array, Array], Array] | None = None,
    desc: str | None = None,
) -> TrainResult:
    """Train `model` on `train_data` (an array of examples) with `model.loss`.

    Args:
      workdir: where metrics.jsonl, train_config.json and checkpoints/ go; None keeps
        nothing on disk (no checkpoints, no resume).
      eval_data: held-out examples; every `eval_every` steps (and at the end) the mean
        held-out NLL of `eval_size` of them is logged as `eval_nll`.
      resume: continue from the last checkpoint in `workdir` if there is one.
      eval_fn: params -> dict of extra metrics, called at the same times.
      batch_fn: (data, key, step) -> batch; default draws `batch_size` examples uniformly
        (see also `sequential_batches`).

    Data parallelism: the batch is sharded over `cfg.num_devices` devices (all by default) along
    a "data" mesh axis; parameters and optimizer state are replicated, so the same global batch
    gives the same result on 1 or many devices. Several hosts: call `jax.distributed.initialize()`
    first (see the README); every host then runs this same code with ITS OWN SHARD of the training
    examples as `train_data` (`global_training_data`) and the same `eval_data`; process 0 writes
    the metrics and the bar, all processes take part in checkpoints.
    """
    check_batch(train_data, model.event_shape, "train_data")
    optimizer = make_optimizer(cfg, model.update_groups)
    train_step = make_train_step(model, optimizer, cfg.ema_decay)
    batch_fn = batch_fn or random_batches(cfg.batch_size)
    mesh = data_mesh(cfg.num_devices)
    if cfg.batch_size % mesh.size:
        raise ValueError(
            f"the global batch of {cfg.batch_size} does not divide over {mesh.size} devices; use a batch "
            f"size that is a multiple of {mesh.size} (e.g. {mesh.size * -(-cfg.batch_size // mesh.size)}) "
            "or set num_devices"
        )
    k = max(1, min(cfg.steps_per_dispatch, cfg.steps))  # steps=0: init only (e.g. a model fitted in init)
    train_data = global_training_data(train_data, mesh)
    primary = jax.process_index() == 0  # the one process that writes metrics, configs and the bar

    init_key = jax.random.fold_in(jax.random.key(cfg.seed), 2**31 - 1)
    example = _first_examples(
        train_data, max(cfg.batch_size, min(train_data.shape[0], cfg.init_examples)), mesh
    )
    state = init_state(model, init_key, example, optimizer, cfg.ema_decay is not None)

    workdir = Path(workdir) if workdir is not None else None
    ckpt = metrics_path = None
    resumed_from = None
    elapsed_before = 0.0  # training seconds of the earlier runs this one resumes
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        metrics_path = workdir / "metrics.jsonl"
        config_path = workdir / "train_config.json"
        ckpt = Checkpointer(workdir / "checkpoints", cfg.max_to_keep)
        last = ckpt.latest_step()
        if last is not None and resume:
            state = ckpt.restore(state)
            resumed_from = int(state.step)
            elapsed_before = _truncate_jsonl(metrics_path, resumed_from)
        elif last is not None:
            raise FileExistsError(
                f"{workdir} already holds checkpoints (last step {last}): pass resume=True (--resume) "
                "to continue that run, or choose an empty workdir."
            )
        elif metrics_path.exists() and primary:
            metrics_path.unlink()
        if primary:
            config_path.write_text(json.dumps(dataclasses.asdict(cfg), indent=1))
        else:
            metrics_path = None  # one process writes the metrics

    evaluate = _make_evaluator(model, eval_data, cfg, eval_fn, mesh)
    if mesh.size > 1:  # replicate the state (the data is placed by global_training_data)
        state = replicate(state, mesh)
    choose = lambda lowered: compiler_options_for(cfg, step_flops(lowered), mesh)
    chunk = CompiledOnFirstCall(make_multi_step(train_step, batch_fn, k, cfg.seed, mesh), choose)
    remainder = cfg.steps % k
    last_chunk = (
        CompiledOnFirstCall(make_multi_step(train_step, batch_fn, remainder, cfg.seed, mesh), choose)
        if remainder
        else chunk
    )

    history: list[dict] = []

    def log(row: dict) -> None:
        history.append(row)
        if metrics_path is not None:
            with metrics_path.open("a") as f:
                f.write(json.dumps(row) + "\n")

    start_step = int(state.step)
    bar = None
    if cfg.progress and primary:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=cfg.steps,
            initial=start_step,
            desc=desc or model.name,
            leave=False,
            dynamic_ncols=True,
            disable=None,
        )  # disable=None: no bar when output is not a terminal

    def every(n: int | None, step: int) -> bool:  # does dispatch ending at `step` cross a multiple of n?
        return bool(n) and (step // n) > ((step - k) // n)

    t0 = time.perf_counter() - elapsed_before  # times count the whole run, across resumes
    t_call = time.perf_counter()
    first_dispatch_seconds = None
    steady_t0 = None
    steps_at_steady = start_step
    pending = None  # (first_step, metrics) of the previous dispatch, read one dispatch late

    def consume(pending) -> None:
        first, metrics = pending
        m = _to_host(metrics)
        losses = m["loss"]
        if not np.all(np.isfinite(losses)):
            bad = first + int(np.argmin(np.isfinite(losses))) + 1
            last_ckpt = ckpt.latest_step() if ckpt is not None else None
            where = (
                f"last good checkpoint: step {last_ckpt} in {ckpt.directory}"
                if last_ckpt
                else "no checkpoint"
            )
            raise NonFiniteLossError(
                f"{model.name}: loss became {losses[np.argmin(np.isfinite(losses))]} at step {bad} "
                f"({where}). Lower the learning rate, enable clip_norm, or check the data for NaN/inf."
            )
        row = {"step": first + len(losses), **{name: float(np.mean(v)) for name, v in m.items()}}
        elapsed = time.perf_counter() - t0
        row["time"] = round(elapsed, 3)
        log(row)
        if bar is not None:
            bar.update(len(losses))
            rate = (row["step"] - steps_at_steady) / (time.perf_counter() - steady_t0) if steady_t0 else 0.0
            bar.set_postfix(loss=f"{row['loss']:.4f}", steps_per_s=f"{rate:.0f}")

    try:
        step = start_step
        while step < cfg.steps:
            fn = chunk if step + k <= cfg.steps else last_chunk
            n = k if fn is chunk else remainder
            state, metrics = fn(state, train_data)
            if first_dispatch_seconds is None:
                jax.block_until_ready(metrics)
                first_dispatch_seconds = time.perf_counter() - t_call
                steady_t0, steps_at_steady = time.perf_counter(), step + n
            if pending is not None:
                consume(pending)
            pending = (step, metrics)
            step += n
            out_of_time = cfg.time_limit_s is not None and time.perf_counter() - t0 > cfg.time_limit_s
            if evaluate is not None and (every(cfg.eval_every, step) or step == cfg.steps or out_of_time):
                consume(pending)
                pending = None
                log({"step": step, **evaluate(state.eval_params)})
            if ckpt is not None and (every(cfg.checkpoint_every, step) or step == cfg.steps or out_of_time):
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
                log({"step": 0, **evaluate(state.eval_params)})
            if ckpt is not None:
                ckpt.save(state)
        jax.block_until_ready(state)
    except KeyboardInterrupt:
        if ckpt is not None:  # keep finished work: the state here is whole (dispatches are atomic)
            ckpt.save(jax.block_until_ready(state))
            ckpt.wait()
        raise
    finally:
        if bar is not None:
            bar.close()
        if ckpt is not None:
            ckpt.wait()
            ckpt.close()

    seconds = time.perf_counter() - t0
    done = int(state.step)
    steady_seconds = time.perf_counter() - steady_t0 if steady_t0 else 0.0
    rate = (
        (done - steps_at_steady) / steady_seconds
        if steady_seconds > 0 and done > steps_at_steady
        else math.nan
    )
    return TrainResult(state, history, seconds, first_dispatch_seconds or 0.0, rate, resumed_from)


def _make_evaluator(model: Model, eval_data, cfg: TrainConfig, eval_fn, mesh: Mesh | None = None):
    if eval_data is None and eval_fn is None:
        return None
    fns = []
    if eval_data is not None and model.kind == Kind.NONE:
        eval_data = None  # no density to evaluate (implicit model); eval_fn may still report metrics
        if eval_fn is None:
            return None
    if eval_data is not None:
        check_batch(eval_data, model.event_shape, "eval_data")
        held_out = jnp.asarray(eval_data[: cfg.eval_size])
        if mesh is not None and jax.process_count() > 1:  # every host passes the same held-out set
            held_out = replicate(held_out, mesh)
        key = jax.random.key(cfg.seed + 1)
        nll = jax.jit(lambda params: -jnp.mean(model.log_prob(params, held_out, key)))
        fns.append(lambda params: {"eval_nll": float(nll(params))})
    if eval_fn is not None:
        fns.append(eval_fn)

    def evaluate(params) -> dict:
        out = {}
        for fn in fns:
            out.update(fn(params))
        return out

    return evaluate
