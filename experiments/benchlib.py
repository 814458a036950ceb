"""Shared pieces of the benchmarks (not an experiment): the flow benchmark's fixed work and one run of it
(`experiments.bench_flows`, `experiments.bench_peers` and `experiments.bench_scale` all run it), one
measurement in a fresh process (`child_command`, `answer_child`, `run_child`), the checks and the saved
config of a benchmark's command line (`check_choices`, `save_config`), and the matmul probe of the
machine (`matmul_gflops`).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

# the same math as the peer libraries run: no input standardization (they have none)
BENCH = {
    "realnvp": dict(num_layers=8, hidden=(64, 64), standardize="none"),
    "nsf": dict(num_layers=4, hidden=(64, 64), num_bins=8, tail_bound=4.0, standardize="none"),
}
DATASETS = ("moons", "checkerboard")
KEYS = (
    "model",
    "dataset",
    "steps_per_sec",
    "first_step_seconds",
    "total_seconds",
    "test_nll",
    "gap",
    "peak_rss_mb",
    "device",
)


def run_once(
    model_name: str,
    dataset: str,
    steps: int,
    seed: int,
    steps_per_dispatch: int,
    compute_dtype: str = "float32",
    batch_order=None,
    data=None,
) -> dict:
    """One benchmark run in this process.

    `batch_order`: an int array (steps, 512) of training-set indices, one row per step, to train on
    exactly those batches (laid out in order, `sequential_batches`; the side-by-side benchmark
    `experiments.bench_peers` hands every library the same one). None (the default, `make
    bench-flows`): batches drawn on the device as in every other run.
    `data`: the arrays to use (an object with `train`, `test`, `true_entropy`, e.g. the side-by-side
    benchmark's export, which every library reads); None draws them (`load_vector_data`)."""
    import jax

    from experiments.memory import peak_rss_mb
    from gen_jax.evaluation import evaluate_nll
    from gen_jax.models import make_model, num_params
    from gen_jax.training import TrainConfig, sequential_batches, train

    if data is None:
        from gen_jax.evaluation.vector import load_vector_data  # imported only here: peak memory is measured

        data = load_vector_data(dataset, 50_000, 10_000, seed=0)  # the same arrays in every run
    model = make_model(model_name, (2,), **BENCH[model_name], compute_dtype=compute_dtype)
    cfg = TrainConfig(
        steps=steps,
        batch_size=512,
        lr=1e-3,
        schedule="constant",
        warmup_steps=0,
        clip_norm=None,
        steps_per_dispatch=steps_per_dispatch,
        checkpoint_every=None,
        seed=seed,
        progress=False,
    )
    batch_fn, train_data = None, data.train
    if batch_order is not None:
        if batch_order.shape[0] < steps or batch_order.shape[1] != cfg.batch_size:
            raise ValueError(f"batch_order {batch_order.shape} does not cover {steps} steps of 512")
        # every batch laid out in order on the device, as flowjax's `fit_to_data` lays them out
        train_data = data.train[batch_order[:steps]].reshape(-1, data.train.shape[1])
        batch_fn = sequential_batches(cfg.batch_size)
    res = train(model, train_data, cfg, batch_fn=batch_fn)
    nll, _, _ = evaluate_nll(model, res.params, data.test, jax.random.key(0))
    k = min(steps_per_dispatch, steps)
    dev = jax.devices()[0]
    return dict(
        model=model_name,
        dataset=dataset,
        steps_per_sec=res.steps_per_sec,
        first_step_seconds=res.first_dispatch_seconds - (k - 1) / res.steps_per_sec,
        total_seconds=res.train_seconds,
        test_nll=nll,
        gap=nll - data.true_entropy,
        peak_rss_mb=peak_rss_mb(),
        device=f"{dev.platform}:{dev.device_kind}",
        params=num_params(res.params),
    )


CHILD = "--child"  # the internal flag of one measurement in a fresh process (never a config field)


def child_command(module: str, function: str, **kwargs) -> list[str]:
    """The command that runs `function(**kwargs)` of the benchmark `module` in a fresh process: the
    benchmark's `main` hands it to `answer_child`, outside `run_cli` (no log, no config, and no
    persistent compilation cache: a measured compile must compile)."""
    return [sys.executable, "-m", module, CHILD, function, json.dumps(kwargs)]


def answer_child(argv, functions: dict, tag: str = "BENCH") -> bool:
    """If `argv` (None: sys.argv[1:]) is a `child_command`, run the function it names (of `functions`)
    and print its result as one `{tag} {json}` line; True then, else False (the parent's command line)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] != [CHILD]:
        return False
    function, kwargs = argv[1], json.loads(argv[2])
    print(f"{tag} " + json.dumps(functions[function](**kwargs)), flush=True)
    return True


def check_choices(key: str, given, valid, allow_empty: bool = False) -> None:
    """A one-line ConfigError naming the config `key`, what is unknown and the valid choices, unless
    every value `given` is one of `valid` (and, unless `allow_empty`, there is at least one)."""
    from gen_jax.core import ConfigError

    unknown = [g for g in given if g not in valid]
    if unknown or not (given or allow_empty):
        what = f"unknown {', '.join(map(repr, unknown))}" if unknown else "nothing chosen"
        raise ConfigError(f"{key}: {what}; choose from {', '.join(map(str, valid))}")


def shorthands(values: str, lists: str = "") -> dict[str, tuple[str, str]]:
    """A benchmark's earlier flags as `run_cli` shorthands of its config keys (space-separated):
    `--probe-n 512` for probe_n=512, and for the keys in `lists` `--models a,b` for models=[a,b]."""
    keys = [*values.split(), *lists.split()]
    return {f"--{k.replace('_', '-')}": (k, "list" if k in lists.split() else "value") for k in keys}


def save_config(out: str | Path, name: str, cfg) -> None:
    """`<out>/<name>_config.yaml`: the resolved config beside `<name>.json` (the benchmarks share one
    directory, where `run_cli`'s config.yaml is the last benchmark's)."""
    from gen_jax.evaluation.config import to_yaml

    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / f"{name}_config.yaml").write_text(to_yaml(cfg))


def run_child(cmd: list[str], what: str, tag: str = "BENCH", env: dict | None = None, timeout=None) -> dict:
    """Run `cmd` (one measurement) in a fresh process and parse the JSON of its `{tag} {json}` line;
    RuntimeError naming `what`, the exit status and the end of stderr when it fails or prints none."""
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=timeout)
    line = next((x for x in out.stdout.splitlines() if x.startswith(tag + " ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"{what} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(line[len(tag) + 1 :])


def matmul_gflops(n: int = 2048, calls: int = 5) -> dict:
    """The machine's matmul rate, the yardstick beside a benchmark's achieved GFLOP/s: a jitted float32
    (n, n) @ (n, n) on the default device at JAX's default precision, the median over `calls` timed
    calls after one untimed call (which compiles). Flops: XLA's cost analysis of the lowered product
    (`gen_jax.training.step_flops`, the count the benchmarks use; 2 n^3), else 2 n^3.

    Returns {"gflops", "n", "calls", "seconds"} (seconds: the median call)."""
    import jax
    import jax.numpy as jnp

    from gen_jax.training import step_flops

    a, b = jax.random.normal(jax.random.key(0), (2, n, n), jnp.float32)
    product = jax.jit(jnp.matmul)
    flops = step_flops(product.lower(a, b)) or 2.0 * n**3
    jax.block_until_ready(product(a, b))
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        jax.block_until_ready(product(a, b))
        times.append(time.perf_counter() - t)
    seconds = statistics.median(times)
    return dict(gflops=flops / seconds / 1e9, n=n, calls=calls, seconds=seconds)


def device_name() -> str:
    """The default device as "platform:kind", e.g. "cpu:cpu" or "gpu:NVIDIA H100 80GB HBM3"."""
    import jax

    dev = jax.devices()[0]
    return f"{dev.platform}:{dev.device_kind}"


def train_images(n: int, shape: tuple[int, ...], dataset: str = "fashion_mnist"):
    """`n` training images of `dataset` (uint8), or seeded uniform random uint8 images of `shape` where
    the dataset is not at hand (a train step costs the same on any pixels)."""
    import numpy as np

    from gen_jax.data.images import load_images

    try:
        return load_images(dataset, "train").images[:n]
    except Exception:  # no dataset here
        return np.random.default_rng(0).integers(0, 256, (n, *shape), dtype=np.uint8)


def train_step_flops(model, cfg, data) -> float:
    """XLA's cost analysis of one optimizer step of `model` under TrainConfig `cfg` (forward, backward
    and update, the step the training loop scans; a lax.scan body is counted once) on the first batch
    of `data`; NaN where the backend offers no analysis."""
    import math

    import jax

    from gen_jax.training import init_state, make_optimizer, make_train_step, step_flops

    opt = make_optimizer(cfg, model.update_groups)
    batch = data[: cfg.batch_size]
    state = init_state(model, jax.random.key(0), batch, opt, False)
    step = jax.jit(make_train_step(model, opt, None))
    flops = step_flops(step.lower(state, jax.numpy.asarray(batch), jax.random.key(1)))
    return math.nan if flops is None else flops
