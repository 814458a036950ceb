"""The orchestrator of `make bench-peers` (runs in gen_jax's venv; see the package docstring).

python -m experiments.bench_peers [--runs 3] [--steps 3000] [--libraries gen_jax,flowjax,normflows]
                                  [--peer-python .venv-peers/bin/python] [--out results/bench]
python -m experiments.bench_peers --preset smoke torch_threads=2   # any field of configs/bench_peers.py

The flags are shorthands of config fields (`SHORTHANDS`); `make bench-peers` passes --peer-python.
"""

from __future__ import annotations

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
from experiments.benchlib import (
    answer_child,
    check_choices,
    child_command,
    run_child,
    save_config,
    shorthands,
)
from experiments.configs.bench_peers import PRESETS, BenchPeersConfig
from gen_jax.core import UserError
from gen_jax.evaluation.cli import run_cli

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


def _command(lib: str, path: Path, dataset: str, model: str, seed: int, cfg: BenchPeersConfig) -> list[str]:
    """One run of `lib` on the exported file `path`: gen_jax's in this venv (`gen_jax_run`), a peer's
    script under `cfg.peer_python` (the peers' venv, without gen_jax)."""
    if lib == "gen_jax":
        kwargs = dict(data_path=str(path), dataset=dataset, model=model, seed=seed, steps=cfg.steps)
        return child_command("experiments.bench_peers", "gen_jax_run", **kwargs)
    cmd = [cfg.peer_python, str(SCRIPTS[lib]), str(path), model, str(seed), "--steps", str(cfg.steps)]
    return cmd + (["--threads", str(cfg.torch_threads)] if lib == "normflows" and cfg.torch_threads else [])


def run(cfg: BenchPeersConfig, fresh: bool = False) -> list[dict]:
    """Export each dataset once, then every (model, dataset) in every library `cfg.runs` times, the
    libraries interleaved, each run a fresh process; writes peers.json, peers.md and peers_config.yaml.
    `fresh` changes nothing: nothing is reused."""
    check_choices("libraries", cfg.libraries, LIBRARIES)
    check_choices("models", cfg.models, MODELS)
    check_choices("datasets", cfg.datasets, DATASETS)
    if any(lib in SCRIPTS for lib in cfg.libraries) and not Path(cfg.peer_python).exists():
        raise UserError(
            f"peer_python {cfg.peer_python} not found: `make bench-peers` creates the peers' venv "
            "(.venv-peers), or pass --peer-python, or --libraries gen_jax"
        )
    out = Path(cfg.out)
    entropy, files = {}, {}
    for dataset in cfg.datasets:  # one export per dataset: every library reads this file
        files[dataset] = export_data(out / "peers_data" / f"{dataset}.npz", dataset, cfg.steps)
        entropy[dataset] = float(load_export(files[dataset])["true_entropy"])

    rows = []
    for model in cfg.models:
        for dataset in cfg.datasets:
            runs = {lib: [] for lib in cfg.libraries}
            for seed in range(cfg.runs):  # libraries interleaved, so a load change hits all of them
                for lib in cfg.libraries:
                    cmd = _command(lib, files[dataset], dataset, model, seed, cfg)
                    r = run_child(cmd, f"{lib} {model}/{dataset}/{seed}")
                    r["dataset"] = dataset
                    r["gap"] = r["test_nll"] - entropy[dataset]
                    runs[lib].append(r)
                    print(
                        f"{lib:9s} {model:8s} {dataset:12s} run {seed}: {r['steps_per_sec']:.0f} steps/s, "
                        f"first step {r['first_step_seconds']:.2f}s, total {r['total_seconds']:.1f}s, "
                        f"NLL {r['test_nll']:.4f}, {r['peak_rss_mb']:.0f} MB, {r['params']} params",
                        flush=True,
                    )
            rows += [median_row(runs[lib]) for lib in cfg.libraries]
    write(out, rows, cfg, entropy)
    save_config(out, "peers", cfg)
    return rows


# the earlier command line's flags, each a config key now (`make bench-peers` passes --peer-python)
SHORTHANDS = shorthands("runs steps peer_python torch_threads out", "libraries models datasets")


def main(argv=None) -> None:
    """The command line (see the package docstring); `--child` is one gen_jax run (`child_command`)."""
    if not answer_child(argv, {"gen_jax_run": gen_jax_run}):
        run_cli("bench_peers", PRESETS, run, argv, shorthands=SHORTHANDS, doc=__doc__)


def write(out: Path, rows: list[dict], a: BenchPeersConfig, entropy: dict) -> None:
    """peers.json and peers.md (`experiments.bench_peers.markdown`), with the machine and versions."""
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
