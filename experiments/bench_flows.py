"""The flow benchmark: fixed work, so gen_jax can be compared with other flow libraries.

    python -m experiments.bench_flows                 # make bench-flows
    python -m experiments.bench_flows --runs 1 --steps 300 --out /tmp/bench
    python -m experiments.bench_flows --preset smoke models=[nsf] --show   # any config field; the config

Presets and fields: experiments/configs/bench_flows.py; the earlier flags are shorthands of fields
(`SHORTHANDS`).

The work: (a) RealNVP, 8 affine coupling layers alternating which coordinate is transformed,
conditioner MLP 2 x 64 ReLU; (b) NSF, 4 rational-quadratic spline coupling layers, 8 bins,
tail bound 4, conditioner 2 x 64. Standard normal base; moons and checkerboard; 50,000
training points, 10,000 test; constant Adam lr 1e-3, batch 512, 3000 steps, float32.

Each run is a fresh subprocess (clean compile caches and peak memory). Reported per
(model, dataset), medians over runs: `steps_per_sec` (steady state, after the first
dispatch), `first_step_seconds` (start of training to the end of the first optimizer step:
compilation plus one step), `total_seconds` (the whole training call), `test_nll` and `gap`
(nats), `peak_rss_mb` (the process's peak resident memory). Writes results/bench/flows.json,
flows.md and flows_config.yaml (the resolved config).
"""

from __future__ import annotations

import statistics
from pathlib import Path

from experiments.benchlib import (
    BENCH,
    KEYS,
    answer_child,
    check_choices,
    child_command,
    run_child,
    run_once,
    save_config,
    shorthands,
)
from experiments.configs.bench_flows import PRESETS, BenchFlowsConfig
from gen_jax.evaluation.cli import run_cli

METRICS = ("steps_per_sec", "first_step_seconds", "total_seconds", "test_nll", "gap", "peak_rss_mb")


def run(cfg: BenchFlowsConfig, fresh: bool = False) -> list[dict]:
    """Measure every (model, dataset) `cfg.runs` times, each a fresh process; write flows.json and
    flows.md (and flows_config.yaml). `fresh` changes nothing: nothing is reused."""
    from gen_jax.data.toy2d import TOY_DATASETS

    check_choices("models", cfg.models, tuple(BENCH))
    check_choices("datasets", cfg.datasets, tuple(TOY_DATASETS))
    check_choices("compute_dtype", [cfg.compute_dtype], ("float32", "bfloat16"))
    rows = []
    for model in cfg.models:
        for dataset in cfg.datasets:
            runs = []
            for seed in range(cfg.runs):
                cmd = child_command(
                    "experiments.bench_flows",
                    "run_once",
                    model_name=model,
                    dataset=dataset,
                    steps=cfg.steps,
                    seed=seed,
                    steps_per_dispatch=cfg.steps_per_dispatch,
                    compute_dtype=cfg.compute_dtype,
                )
                runs.append(r := run_child(cmd, f"benchmark run {model}/{dataset}/{seed}"))
                print(
                    f"{model:8s} {dataset:12s} run {seed}: {r['steps_per_sec']:.0f} steps/s, "
                    f"first step {r['first_step_seconds']:.2f}s, gap {r['gap']:.4f}",
                    flush=True,
                )
            row = {k: runs[0][k] for k in ("model", "dataset", "device")}
            row.update({k: statistics.median(r[k] for r in runs) for k in METRICS})
            row["runs"] = runs
            rows.append(row)
    write(Path(cfg.out), rows, cfg)
    save_config(cfg.out, "flows", cfg)
    return rows


# the earlier command line's flags, each a config key now
SHORTHANDS = shorthands("runs steps steps_per_dispatch compute_dtype out", "models datasets")


def main(argv=None) -> None:
    """The command line (see the module docstring); `--child` is one measurement (`child_command`)."""
    if not answer_child(argv, {"run_once": run_once}):
        run_cli("bench_flows", PRESETS, run, argv, shorthands=SHORTHANDS, doc=__doc__)


def write(out: Path, rows: list[dict], a: BenchFlowsConfig) -> None:
    """flows.json and flows.md: the medians per (model, dataset), under a line saying the work."""
    from gen_jax.evaluation.tables import machine_description, markdown_table, write_results

    cols = [
        ("model", "model"),
        ("dataset", "dataset"),
        ("steps_per_sec", "steps/s"),
        ("first_step_seconds", "first step s"),
        ("total_seconds", "total s"),
        ("test_nll", "test NLL"),
        ("gap", "gap"),
        ("peak_rss_mb", "peak RSS MB"),
        ("device", "device"),
    ]
    head = (
        f"{a.steps} steps, batch 512, Adam 1e-3, compute {a.compute_dtype}, "
        f"{a.steps_per_dispatch} steps per dispatch; "
        f"medians of {a.runs} runs, each a fresh process. Machine: {machine_description()}.\n\n"
    )
    md = head + markdown_table(
        rows,
        cols,
        digits={
            "steps_per_sec": 0,
            "first_step_seconds": 2,
            "total_seconds": 1,
            "test_nll": 4,
            "gap": 4,
            "peak_rss_mb": 0,
        },
    )
    write_results(out, rows, KEYS + ("runs",), md, name="flows")
    print(md)


if __name__ == "__main__":
    main()
