"""Scaling table: steps/s and examples/s of the flow benchmark's NSF and of the image models, on 1-8
devices (`make bench-scale`).

    python -m experiments.bench_scale                              # make bench-scale
    python -m experiments.bench_scale --devices 1,2 --models nsf,vae --dispatches 1   # --preset smoke
    python -m experiments.bench_scale devices=[1,4] no_real=true     # any field of configs/bench_scale.py

Workloads: the NSF of `make bench-flows` (4 spline couplings, 8 bins, MLP 2x64) on moons at batch 512,
and glow, pixelcnn, vae, diffusion and the energy model with their `cpu` preset kwargs (experiments/
configs/images.py) at batch 64 on random 28x28x1 uint8 images (a step's speed does not depend on pixels).
`gen_jax.training.train` shards each batch over `TrainConfig.num_devices` devices along a "data" mesh
axis (parameters replicated, gradients all-reduced by XLA).

Devices: N simulated CPU devices (a fresh process with
XLA_FLAGS=--xla_force_host_platform_device_count=N, JAX_PLATFORMS=cpu) for each N in `devices`,
and the real devices a plain process sees (`jax.devices()`). On a CPU-only host the real device is
the one CPU, the N=1 row. Simulated devices share the same cores, so their rows show that the code
runs sharded and what sharding costs, not a speed-up. On a GPU host the real-device rows also run
the image models at batch 64, 256 and 1024 (`real_batches`).

Each (model, batch, devices) is a fresh process: `steps_per_dispatch` steps per jitted dispatch,
`dispatches` timed dispatches after the first (which compiles). Writes results/bench/scale.json,
scale.md and scale_config.yaml.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from experiments.benchlib import (
    BENCH,
    answer_child,
    check_choices,
    child_command,
    device_name,
    run_child,
    save_config,
    shorthands,
)
from experiments.configs.bench_scale import PRESETS, BenchScaleConfig
from gen_jax.evaluation.cli import run_cli

IMAGE_MODELS = ("glow", "pixelcnn", "vae", "diffusion", "ebm_dsm_ladder")
MODELS = ("nsf",) + IMAGE_MODELS
# the flow benchmark's workloads (`experiments.benchlib.BENCH`, on moons): (batch, steps per dispatch);
# the image models run at `--batch` (on real accelerators also `--real-batches`) and
# `--image-steps-per-dispatch`
VECTOR_WORK = {name: (512, 100) for name in BENCH}
KEYS = tuple(
    "model batch devices simulated platform per_device_batch steps_per_sec examples_per_sec relative "
    "first_dispatch_seconds steps peak_rss_mb params".split()
)
FORCE = "--xla_force_host_platform_device_count"


def build(model_name: str):
    """(model, training data) for one workload."""
    import numpy as np

    from experiments.configs.images import CPU
    from gen_jax.data.images import IMAGE_SHAPE
    from gen_jax.evaluation.vector import load_vector_data
    from gen_jax.models import make_model

    if model_name in VECTOR_WORK:  # the flow benchmark's work, on moons
        return make_model(model_name, (2,), **BENCH[model_name]), load_vector_data(
            "moons", 50_000, 10, seed=0
        ).train
    kwargs = CPU.setup.model_options[model_name]
    images = np.random.default_rng(0).integers(0, 256, (1024,) + IMAGE_SHAPE, dtype=np.uint8)
    return make_model(model_name, IMAGE_SHAPE, **kwargs), images


def run_once(model_name: str, batch: int, devices: int | None, steps_per_dispatch: int, dispatches: int):
    """One measurement in this process; devices=None: all visible devices."""
    import jax

    from experiments.memory import peak_rss_mb
    from gen_jax.models import num_params
    from gen_jax.training import TrainConfig, train

    model, data = build(model_name)
    n = len(jax.devices()) if devices is None else devices
    cfg = TrainConfig(
        steps=steps_per_dispatch * (1 + dispatches),
        batch_size=batch,
        lr=1e-4,
        schedule="constant",
        warmup_steps=0,
        steps_per_dispatch=steps_per_dispatch,
        checkpoint_every=None,
        progress=False,
        init_examples=min(len(data), 256),
        num_devices=n,
    )
    res = train(model, data, cfg)
    return dict(
        model=model_name,
        batch=batch,
        devices=n,
        platform=device_name(),
        per_device_batch=batch // n,
        steps_per_sec=res.steps_per_sec,
        examples_per_sec=res.steps_per_sec * batch,
        first_dispatch_seconds=res.first_dispatch_seconds,
        steps=int(res.state.step),
        peak_rss_mb=peak_rss_mb(),
        params=num_params(res.params),
    )


def _env(simulated: int | None) -> dict:
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith(FORCE)]
    if simulated is not None:
        flags.append(f"{FORCE}={simulated}")
        env["JAX_PLATFORMS"] = "cpu"
    env["XLA_FLAGS"] = " ".join(flags)
    return env


def _launch(function: str, env: dict, what: str, **kwargs) -> dict:
    """One measurement (or the device probe) in a fresh process under `env`."""
    return run_child(child_command("experiments.bench_scale", function, **kwargs), what, "SCALE", env)


def probe() -> dict:
    """The devices a plain process sees: platform, kind and count."""
    import jax

    devs = jax.devices()
    return dict(platform=devs[0].platform, kind=devs[0].device_kind, count=len(devs))


def plan(cfg: BenchScaleConfig, real: dict) -> list[tuple[str, int, int, bool]]:
    """(model, batch, devices, simulated) of every measurement, in the table's order."""
    out = []
    for n in cfg.devices:
        if n == 1 and real["platform"] == "cpu" and real["count"] == 1 and not cfg.no_real:
            continue  # the real run below is this one
        out += [(m, VECTOR_WORK[m][0] if m in VECTOR_WORK else cfg.batch, n, True) for m in cfg.models]
    batches = cfg.real_batches if real["platform"] != "cpu" else (cfg.batch,)
    for m in cfg.models if not cfg.no_real else ():
        for b in [VECTOR_WORK[m][0]] if m in VECTOR_WORK else sorted(set(batches)):
            out.append((m, b, real["count"], False))
    return sorted(out, key=lambda x: (cfg.models.index(x[0]), x[1], x[2], x[3]))


def run(cfg: BenchScaleConfig, fresh: bool = False) -> list[dict]:
    """Each measurement of `plan` in a fresh process; writes scale.json, .md, _config.yaml (fresh: unused)."""
    check_choices("models", cfg.models, MODELS)
    real = _launch("probe", _env(None), "probing the devices")
    rows = []
    for m, b, n, simulated in plan(cfg, real):
        k = VECTOR_WORK[m][1] if m in VECTOR_WORK else cfg.image_steps_per_dispatch
        what, devices = f"{m} batch {b} on {n} device(s)", n if simulated else None
        kwargs = dict(model_name=m, batch=b, devices=devices, steps_per_dispatch=k, dispatches=cfg.dispatches)
        r = _launch("run_once", _env(devices), what, **kwargs)
        r["simulated"] = simulated
        rows.append(r)
        print(
            f"{m:10s} batch {b:5d} {n} {'simulated' if simulated else 'real'} device(s): "
            f"{r['steps_per_sec']:.1f} steps/s, {r['examples_per_sec']:.0f} examples/s, "
            f"first dispatch {r['first_dispatch_seconds']:.1f}s",
            flush=True,
        )
    add_relative(rows)
    write(Path(cfg.out), rows, real, cfg)
    save_config(cfg.out, "scale", cfg)
    return rows


# the earlier command line's flags, each a config key now (`--no-real` stays a switch: `main`)
SHORTHANDS = shorthands(
    "batch dispatches image_steps_per_dispatch no_real out", "models devices real_batches"
)


def main(argv=None) -> None:
    """The command line (see the module docstring); `--child` is one measurement (`child_command`)."""
    argv = [f"{x}=true" if x == "--no-real" else x for x in (sys.argv[1:] if argv is None else argv)]
    if not answer_child(argv, {"run_once": run_once, "probe": probe}, tag="SCALE"):
        run_cli("bench_scale", PRESETS, run, argv, shorthands=SHORTHANDS, doc=__doc__)


def add_relative(rows: list[dict]) -> None:
    """`relative`: steps/s over the 1-device run of the same model and batch on the same platform."""
    one = {(r["model"], r["batch"], r["platform"]): r for r in rows if r["devices"] == 1}
    for r in rows:
        base = one.get((r["model"], r["batch"], r["platform"]))
        ok = base and base["steps_per_sec"] and r["steps_per_sec"] == r["steps_per_sec"]
        r["relative"] = r["steps_per_sec"] / base["steps_per_sec"] if ok else None


def markdown(rows: list[dict], real: dict, a) -> str:
    from gen_jax.evaluation.tables import markdown_table

    shown = []
    for r in rows:
        kind = "simulated CPU" if r["simulated"] else f"real {real['platform']}"
        shown.append({**r, "devices": f"{r['devices']} ({kind})"})
    cols = [
        ("model", "model"),
        ("batch", "batch"),
        ("devices", "devices"),
        ("per_device_batch", "per device"),
        ("steps_per_sec", "steps/s"),
        ("examples_per_sec", "examples/s"),
        ("relative", "vs 1 device"),
        ("first_dispatch_seconds", "first dispatch s"),
        ("peak_rss_mb", "peak RSS MB"),
        ("params", "params"),
    ]
    from gen_jax.evaluation.tables import machine_description

    head = (
        "Data-parallel training (`TrainConfig.num_devices`; each batch sharded over a 'data' mesh axis, "
        "parameters replicated). NSF: the bench-flows NSF on moons; image models: the `cpu` preset "
        "architectures on random 28x28x1 images. steps/s: steady state over "
        f"{a.dispatches} dispatches after the first (which compiles); NSF 100 steps per dispatch, image "
        f"models {a.image_steps_per_dispatch}; each row a fresh process. 'simulated CPU' devices are "
        "XLA host devices (--xla_force_host_platform_device_count) that all share the same CPU cores: "
        "those rows show that the code runs sharded and what the sharding costs, not a speed-up. "
        f"Machine: {machine_description()}.\n\n"
    )
    return head + markdown_table(
        shown,
        cols,
        digits={
            "steps_per_sec": 1,
            "examples_per_sec": 0,
            "relative": 2,
            "first_dispatch_seconds": 1,
            "peak_rss_mb": 0,
        },
    )


def write(out: Path, rows: list[dict], real: dict, a) -> None:
    from gen_jax.evaluation.tables import write_results

    md = markdown(rows, real, a)
    write_results(out, rows, KEYS, md, name="scale")
    print(md)


if __name__ == "__main__":
    main()
