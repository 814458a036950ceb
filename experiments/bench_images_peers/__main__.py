"""The orchestrator of `make bench-images-peers` (runs in gen_jax's venv; see the package docstring).

python -m experiments.bench_images_peers [--runs 3] [--steps 110] [--families pixelcnn,vae,glow,diffusion]
    [--libraries gen_jax,torch_eager,torch_compile] [--data fashion_mnist|random] [--data-dir DIR]
    [--peer-python .venv-peers/bin/python] [--torch-threads N] [--out results/bench]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from experiments.bench_images_peers import (
    DEFAULT_LIBRARIES,
    DEFAULT_STEPS,
    EVAL_BATCH,
    EVAL_REPS,
    FAMILIES,
    LIBRARIES,
    STEPS_PER_DISPATCH,
)
from experiments.bench_images_peers.tables import median_row, write
from experiments.benchlib import run_child

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


def command(lib: str, data: Path, run: int, a) -> list[str]:
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


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="optimizer steps per measurement")
    p.add_argument("--steps-per-dispatch", type=int, default=STEPS_PER_DISPATCH, help="and warm-up steps")
    p.add_argument("--eval-reps", type=int, default=EVAL_REPS)
    p.add_argument("--families", default=",".join(FAMILIES))
    p.add_argument("--libraries", default=",".join(DEFAULT_LIBRARIES), help=f"of {', '.join(LIBRARIES)}")
    p.add_argument("--data", default="fashion_mnist", help="fashion_mnist (IDX files / TFDS) or random")
    p.add_argument("--data-dir", default=os.environ.get("GEN_JAX_DATA_DIR") or None)
    p.add_argument("--peer-python", default=".venv-peers/bin/python", help="the peers' venv python")
    p.add_argument("--torch-threads", type=int, default=None, help="torch threads (default: cores)")
    p.add_argument("--out", default="results/bench")
    a = p.parse_args(argv)

    families = a.families.split(",")
    libraries = a.libraries.split(",")
    for name, given, known in (("families", families, FAMILIES), ("libraries", libraries, LIBRARIES)):
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise SystemExit(f"unknown {name} {unknown}; choose from {', '.join(known)}")
    if a.steps < 2 * a.steps_per_dispatch:
        raise SystemExit(
            f"--steps {a.steps}: need at least 2 x --steps-per-dispatch ({2 * a.steps_per_dispatch})"
        )
    if any(lib.startswith("torch_") for lib in libraries) and not Path(a.peer_python).exists():
        raise SystemExit(
            f"{a.peer_python} not found: `make bench-images-peers` creates the peers' venv (.venv-peers), "
            "or pass --peer-python, or --libraries gen_jax"
        )

    from experiments.bench_images_peers.gen_jax_run import export, image_pool

    out = Path(a.out)
    most = max(FAMILIES[f]["batch"] for f in families) * a.steps
    train_images, test_images, source = image_pool(a.data, most, EVAL_BATCH, a.data_dir)
    files = {}
    for family in families:  # one export per family: every library and run reads this file
        files[family] = export(
            out / "images_peers_data" / f"{family}.npz", family, a.steps, train_images, test_images, source
        )
    del train_images

    rows = []
    for family in families:
        runs = {lib: [] for lib in libraries}
        for run in range(a.runs):  # libraries interleaved, so a change of load hits all of them
            for lib in libraries:
                r = measured(command(lib, files[family], run, a), f"{lib} {family} run {run}")
                busy = r.get("others_busy")
                runs[lib].append(r)
                print(
                    f"{lib:13s} {family:9s} run {run}: {r['train_steps_per_sec']:.2f} steps/s, "
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
        rows += [median_row(runs[lib]) for lib in libraries]

    versions = {}
    for r in rows:
        versions.setdefault("gen_jax" if r["library"] == "gen_jax" else "torch", r.get("version"))
    threads = sorted({x["torch_threads"] for r in rows for x in r["runs"] if x.get("torch_threads")})
    meta = dict(
        steps=a.steps,
        warmup=a.steps_per_dispatch,
        runs=a.runs,
        eval_batch=EVAL_BATCH,
        eval_reps=a.eval_reps,
        data=source,
        machine=machine() + (f"; torch threads {', '.join(map(str, threads))}" if threads else ""),
        versions="; ".join(v for v in versions.values() if v),
    )
    print(write(out, rows, meta))


if __name__ == "__main__":
    main()
