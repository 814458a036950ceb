"""The orchestrator of `make bench-images-peers` (runs in gen_jax's venv; see the package docstring).

python -m experiments.bench_images_peers [--runs 3] [--steps 110] [--families pixelcnn,vae,glow,diffusion]
    [--libraries gen_jax,torch_eager,torch_compile] [--data fashion_mnist|random] [--data-dir DIR]
    [--peer-python .venv-peers/bin/python] [--torch-threads N] [--out results/bench]
python -m experiments.bench_images_peers --preset smoke data=random   # any field of its config

Presets and fields: experiments/configs/bench_images_peers.py; the flags are shorthands of fields
(`SHORTHANDS`; `make bench-images-peers` passes --peer-python).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from experiments.bench_images_peers import EVAL_BATCH, FAMILIES, LIBRARIES
from experiments.bench_images_peers.tables import median_row, write
from experiments.benchlib import check_choices, run_child, save_config, shorthands
from experiments.configs.bench_images_peers import PRESETS, BenchImagesPeersConfig
from gen_jax.core import ConfigError, UserError
from gen_jax.evaluation.cli import run_cli

HERE = Path(__file__).resolve().parent
TORCH_SCRIPT = HERE / "torch_run.py"


def launch(cmd: list[str], what: str, timeout: float | None = None) -> dict:
    """Run one measurement in a fresh process and parse its `BENCH {json}` line."""
    return run_child(cmd, what, timeout=timeout)


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) clock ticks of all cores since boot (/proc/stat); None off Linux."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(v) - v[3] - v[4], sum(v)  # all but idle and iowait


def measured(cmd: list[str], what: str) -> dict:
    """`launch`, and the share of the cores that OTHER processes kept busy meanwhile (`others_busy`):
    the machine's busy time during the run less the run's own CPU time (its children's included).
    PyTorch's OpenMP threads slow down many-fold when they share the cores; XLA's far less."""
    import resource

    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    before, cpu0 = _cpu_jiffies(), resource.getrusage(resource.RUSAGE_CHILDREN)
    r = launch(cmd, what)
    after, cpu1 = _cpu_jiffies(), resource.getrusage(resource.RUSAGE_CHILDREN)
    if before and after and after[1] > before[1]:
        own = (cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime) * ticks
        r["others_busy"] = min(max((after[0] - before[0] - own) / (after[1] - before[1]), 0.0), 1.0)
    return r


def command(lib: str, data: Path, run: int, a: BenchImagesPeersConfig) -> list[str]:
    """One measurement of `lib`: gen_jax's child (`gen_jax_run`) in this venv, torch's (`torch_run.py`)
    under `a.peer_python`."""
    extra = ["--eval-reps", str(a.eval_reps), "--steps-per-dispatch", str(a.steps_per_dispatch)]
    if lib == "gen_jax":
        return [
            sys.executable,
            "-m",
            "experiments.bench_images_peers.gen_jax_run",
            str(data),
            str(run),
            *extra,
        ]
    mode = lib.split("_")[1]
    cmd = [str(a.peer_python), str(TORCH_SCRIPT), str(data), str(run), "--mode", mode, *extra]
    if lib.endswith("_nchw"):
        cmd.append("--contiguous")
    return cmd + (["--threads", str(a.torch_threads)] if a.torch_threads else [])


def machine() -> str:
    """experiments.common.machine_description (its format), standing alone if that module fails to import."""
    try:
        from gen_jax.evaluation.tables import machine_description

        return machine_description()
    except Exception:  # noqa: BLE001  (a refactor in progress must not lose the measurements)
        import platform

        import jax

        dev = jax.devices()[0]
        cpu = platform.processor() or platform.machine()
        try:
            names = [
                ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")
            ]
            cpu = names[0] if names else cpu
        except OSError:
            pass
        n = len(jax.devices())
        return f"{dev.platform}:{dev.device_kind} ({n} device(s)); host {cpu}, {os.cpu_count()} cores"


def check(cfg: BenchImagesPeersConfig) -> None:
    """A one-line error for a config that cannot run (unknown families or libraries, too few steps,
    no peers' python for the torch libraries)."""
    check_choices("families", cfg.families, tuple(FAMILIES))
    check_choices("libraries", cfg.libraries, LIBRARIES)
    if cfg.steps < 2 * cfg.steps_per_dispatch:
        raise ConfigError(
            f"steps {cfg.steps}: need at least 2 x steps_per_dispatch ({2 * cfg.steps_per_dispatch})"
        )
    if any(lib.startswith("torch_") for lib in cfg.libraries) and not Path(cfg.peer_python).exists():
        raise UserError(
            f"peer_python {cfg.peer_python} not found: `make bench-images-peers` creates the peers' venv "
            "(.venv-peers), or pass --peer-python, or --libraries gen_jax"
        )


def run(cfg: BenchImagesPeersConfig, fresh: bool = False) -> list[dict]:
    """Export each family once, then every family in every library `cfg.runs` times (libraries
    interleaved, each run a fresh process); writes images_peers.json, .md and _config.yaml. `fresh`
    changes nothing: nothing is reused."""
    check(cfg)
    from experiments.bench_images_peers.gen_jax_run import export, image_pool

    out = Path(cfg.out)
    most = max(FAMILIES[f]["batch"] for f in cfg.families) * cfg.steps
    data_dir = cfg.data_dir or os.environ.get("GEN_JAX_DATA_DIR") or None
    train_images, test_images, source = image_pool(cfg.data, most, EVAL_BATCH, data_dir)
    files = {}
    for family in cfg.families:  # one export per family: every library and run reads this file
        path = out / "images_peers_data" / f"{family}.npz"
        files[family] = export(path, family, cfg.steps, train_images, test_images, source)
    del train_images

    rows = []
    for family in cfg.families:
        runs = {lib: [] for lib in cfg.libraries}
        for i in range(cfg.runs):  # libraries interleaved, so a change of load hits all of them
            for lib in cfg.libraries:
                r = measured(command(lib, files[family], i, cfg), f"{lib} {family} run {i}")
                busy = r.get("others_busy")
                runs[lib].append(r)
                print(
                    f"{lib:13s} {family:9s} run {i}: {r['train_steps_per_sec']:.2f} steps/s, "
                    f"eval {r['eval_images_per_sec']:.0f} images/s, "
                    f"first step {r['first_step_seconds']:.1f}s, "
                    f"{r['peak_rss_mb']:.0f} MB, {r['params']} params, test bits/dim "
                    f"{r['init_test_bpd']:.3f} at init, {r['final_test_bpd']:.3f} trained"
                    + (
                        f"; other processes {100 * busy:.0f}% of the cores meanwhile"
                        if busy is not None
                        else ""
                    ),
                    flush=True,
                )
        rows += [median_row(runs[lib]) for lib in cfg.libraries]
    print(write(out, rows, _meta(rows, cfg, source)))
    save_config(out, "images_peers", cfg)
    return rows


def _meta(rows: list[dict], cfg: BenchImagesPeersConfig, source: str) -> dict:
    """What the tables say about the run: its settings, the data, the machine and the versions."""
    versions = {}
    for r in rows:
        versions.setdefault("gen_jax" if r["library"] == "gen_jax" else "torch", r.get("version"))
    threads = sorted({x["torch_threads"] for r in rows for x in r["runs"] if x.get("torch_threads")})
    return dict(
        steps=cfg.steps,
        warmup=cfg.steps_per_dispatch,
        runs=cfg.runs,
        eval_batch=EVAL_BATCH,
        eval_reps=cfg.eval_reps,
        data=source,
        machine=machine() + (f"; torch threads {', '.join(map(str, threads))}" if threads else ""),
        versions="; ".join(v for v in versions.values() if v),
    )


# the earlier command line's flags, each a config key now (`make bench-images-peers` passes --peer-python)
SHORTHANDS = shorthands(
    "runs steps steps_per_dispatch eval_reps data data_dir peer_python torch_threads out",
    "families libraries",
)


def main(argv=None) -> None:
    """The command line (see the package docstring); the runs are `gen_jax_run.py` and `torch_run.py`."""
    run_cli("bench_images_peers", PRESETS, run, argv, shorthands=SHORTHANDS, doc=__doc__)


if __name__ == "__main__":
    main()
