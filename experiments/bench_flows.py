"""The flow benchmark: fixed work, so gen_jax can be compared with other flow libraries.

    python -m experiments.bench_flows                 # make bench-flows
    python -m experiments.bench_flows --runs 1 --steps 300 --out /tmp/bench

The work: (a) RealNVP, 8 affine coupling layers alternating which coordinate is transformed,
conditioner MLP 2 x 64 ReLU; (b) NSF, 4 rational-quadratic spline coupling layers, 8 bins,
tail bound 4, conditioner 2 x 64. Standard normal base; moons and checkerboard; 50,000
training points, 10,000 test; constant Adam lr 1e-3, batch 512, 3000 steps, float32.

Each run is a fresh subprocess (clean compile caches and peak memory). Reported per
(model, dataset), medians over runs: `steps_per_sec` (steady state, after the first
dispatch), `first_step_seconds` (start of training to the end of the first optimizer step:
compilation plus one step), `total_seconds` (the whole training call), `test_nll` and `gap`
(nats), `peak_rss_mb` (the process's peak resident memory). Writes results/bench/flows.json
and flows.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from experiments.benchlib import BENCH, DATASETS, KEYS, run_once


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--steps-per-dispatch", type=int, default=100)
    p.add_argument(
        "--compute-dtype", default="float32", help="float32 (the benchmark) or bfloat16 (mixed precision)"
    )
    p.add_argument("--models", default=",".join(BENCH))
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--out", default="results/bench")
    p.add_argument("--child", nargs=3, metavar=("MODEL", "DATASET", "SEED"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        model, dataset, seed = a.child
        print(
            "BENCH "
            + json.dumps(run_once(model, dataset, a.steps, int(seed), a.steps_per_dispatch, a.compute_dtype)),
            flush=True,
        )
        return

    rows = []
    for model in a.models.split(","):
        for dataset in a.datasets.split(","):
            runs = []
            for seed in range(a.runs):
                cmd = [
                    sys.executable,
                    "-m",
                    "experiments.bench_flows",
                    "--child",
                    model,
                    dataset,
                    str(seed),
                    "--steps",
                    str(a.steps),
                    "--steps-per-dispatch",
                    str(a.steps_per_dispatch),
                    "--compute-dtype",
                    a.compute_dtype,
                ]
                out = subprocess.run(cmd, capture_output=True, text=True, check=False)
                line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH ")), None)
                if out.returncode != 0 or line is None:
                    raise RuntimeError(
                        f"benchmark run {model}/{dataset}/{seed} failed:\n{out.stderr[-3000:]}"
                    )
                runs.append(json.loads(line[len("BENCH ") :]))
                r = runs[-1]
                print(
                    f"{model:8s} {dataset:12s} run {seed}: {r['steps_per_sec']:.0f} steps/s, "
                    f"first step {r['first_step_seconds']:.2f}s, gap {r['gap']:.4f}",
                    flush=True,
                )
            row = {k: runs[0][k] for k in ("model", "dataset", "device")}
            for k in (
                "steps_per_sec",
                "first_step_seconds",
                "total_seconds",
                "test_nll",
                "gap",
                "peak_rss_mb",
            ):
                row[k] = statistics.median(r[k] for r in runs)
            row["runs"] = runs
            rows.append(row)
    write(Path(a.out), rows, a)


def write(out: Path, rows: list[dict], a) -> None:
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
