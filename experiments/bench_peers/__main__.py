"""The orchestrator of `make bench-peers` (runs in gen_jax's venv; see the package docstring).

python -m experiments.bench_peers [--runs 3] [--steps 3000] [--libraries gen_jax,flowjax,normflows]
                                  [--peer-python .venv-peers/bin/python] [--out results/bench]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import types
from pathlib import Path

from experiments.bench_peers import (
    DATASETS,
    KEYS,
    LIBRARIES,
    MODELS,
    export_data,
    load_export,
    markdown,
    median_row,
)

HERE = Path(__file__).resolve().parent
SCRIPTS = {"flowjax": HERE / "flowjax_run.py", "normflows": HERE / "normflows_run.py"}


def gen_jax_run(data_path: str, dataset: str, model: str, seed: int, steps: int) -> dict:
    """gen_jax's run: `bench_flows.run_once` on the exported batch order."""
    import jax

    import gen_jax
    from experiments.benchlib import run_once

    export = load_export(data_path)  # the arrays every library reads
    data = types.SimpleNamespace(
        train=export["train"], test=export["test"], true_entropy=float(export["true_entropy"])
    )
    row = run_once(
        model, dataset, steps, seed, steps_per_dispatch=100, batch_order=export["order"], data=data
    )
    version = getattr(gen_jax, "__version__", None)
    row.update(
        library="gen_jax", version=(f"gen_jax {version}, " if version else "") + f"jax {jax.__version__}"
    )
    return row


def launch(cmd: list[str], what: str) -> dict:
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"{what} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(line[len("BENCH ") :])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--libraries", default=",".join(LIBRARIES))
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--peer-python", default=".venv-peers/bin/python", help="the peers' venv python")
    p.add_argument("--out", default="results/bench")
    p.add_argument("--torch-threads", type=int, default=None, help="torch threads (default: cores)")
    p.add_argument("--child", nargs=4, metavar=("DATA", "DATASET", "MODEL", "SEED"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        data_path, dataset, model, seed = a.child
        print("BENCH " + json.dumps(gen_jax_run(data_path, dataset, model, int(seed), a.steps)), flush=True)
        return

    libraries = a.libraries.split(",")
    unknown = set(libraries) - set(LIBRARIES)
    if unknown:
        raise SystemExit(f"unknown libraries {sorted(unknown)}; choose from {', '.join(LIBRARIES)}")
    peer_python = Path(a.peer_python)
    if any(lib in SCRIPTS for lib in libraries) and not peer_python.exists():
        raise SystemExit(
            f"{peer_python} not found: `make bench-peers` creates the peers' venv (.venv-peers), or pass "
            "--peer-python, or --libraries gen_jax"
        )
    out = Path(a.out)
    entropy, files = {}, {}
    for dataset in a.datasets.split(","):  # one export per dataset: every library reads this file
        files[dataset] = export_data(out / "peers_data" / f"{dataset}.npz", dataset, a.steps)
        entropy[dataset] = float(load_export(files[dataset])["true_entropy"])

    rows = []
    for model in a.models.split(","):
        for dataset in a.datasets.split(","):
            runs = {lib: [] for lib in libraries}
            for seed in range(a.runs):  # libraries interleaved, so a load change hits all of them
                for lib in libraries:
                    if lib == "gen_jax":
                        cmd = [sys.executable, "-m", "experiments.bench_peers", "--child"]
                        cmd += [str(files[dataset]), dataset, model, str(seed), "--steps", str(a.steps)]
                    else:
                        cmd = [str(peer_python), str(SCRIPTS[lib]), str(files[dataset]), model, str(seed)]
                        cmd += ["--steps", str(a.steps)]
                        if lib == "normflows" and a.torch_threads:
                            cmd += ["--threads", str(a.torch_threads)]
                    r = launch(cmd, f"{lib} {model}/{dataset}/{seed}")
                    r["dataset"] = dataset
                    r["gap"] = r["test_nll"] - entropy[dataset]
                    runs[lib].append(r)
                    print(
                        f"{lib:9s} {model:8s} {dataset:12s} run {seed}: {r['steps_per_sec']:.0f} steps/s, "
                        f"first step {r['first_step_seconds']:.2f}s, total {r['total_seconds']:.1f}s, "
                        f"NLL {r['test_nll']:.4f}, {r['peak_rss_mb']:.0f} MB, {r['params']} params",
                        flush=True,
                    )
            rows += [median_row(runs[lib]) for lib in libraries]
    write(out, rows, a, entropy)


def write(out: Path, rows: list[dict], a, entropy: dict) -> None:
    from gen_jax.evaluation.tables import machine_description, write_results

    versions = {}
    for r in rows:
        versions.setdefault(r["library"], r.get("version"))
    threads = {r.get("torch_threads") for row in rows for r in row["runs"] if r.get("torch_threads")}
    meta = dict(
        steps=a.steps,
        runs=a.runs,
        machine=machine_description()
        + (f"; torch threads {', '.join(map(str, sorted(threads)))}" if threads else ""),
        versions="; ".join(f"{v}" for v in versions.values() if v),
        entropy=entropy,
    )
    md = markdown(rows, meta)
    write_results(out, rows, KEYS, md, name="peers")
    print(md)


if __name__ == "__main__":
    main()
