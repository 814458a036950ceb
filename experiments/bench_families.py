"""Throughput of every model family's train step, and what each optimization buys.

    python -m experiments.bench_families                    # make bench-families
    python -m experiments.bench_families --families vae,glow --runs 1 --steps 40

For each family (at the size its experiment trains: the bench flows, and the `cpu` preset of the
image models) and each variant of the one training loop, a fresh subprocess reports:

- `compile_s`: time to the end of the first dispatch (tracing + XLA compilation + one dispatch);
- `steps_per_sec` / `examples_per_sec`: steady state, after the first dispatch;
- `gflop_per_step`: XLA's own cost analysis of one compiled optimizer step (forward, backward and
  update; it counts a lax.scan body once, so each family gets its unscanned variant's count), and
  `gflops` = gflop_per_step x steps/s, the arithmetic rate achieved.

Variants, each changing one thing against `default` (the configuration gen_jax uses):
- `dispatch1`: one optimizer step per dispatch instead of a block of them under one lax.scan (100
  for the 2D models, 10 for the images): the host round trip per step that the scanned loop removes;
- `lax_conv`: XLA's native convolution instead of gen_jax's im2col form (`gen_jax.nn.conv`), for
  the convolutional image models;
- `unscanned`: a flow's layers chained in Python instead of run by lax.scan over stacked
  parameters (compile time grows with depth);
- `looped`: a flow's layer scan as a loop (`unroll_layers=1`) instead of unrolled;
- `other_emitters`: the train step compiled with the XLA:CPU fusion emitters the default does not
  pick for a step of its size (`gen_jax.training.compiler_options_for`: the earlier LLVM emitters
  below SMALL_STEP_FLOPS, XLA's MLIR emitters above); the `emitters` column says which ran.

Medians of `--runs` runs. Writes results/bench/families.json and families.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

# family -> (model name, event shape, builder kwargs, batch size); image kwargs = the cpu preset's
FAMILIES: dict[str, tuple[str, tuple[int, ...], dict, int]] = {
    "flow/realnvp": ("realnvp", (2,), dict(num_layers=8, hidden=(64, 64)), 512),
    "flow/nsf": ("nsf", (2,), dict(num_layers=4, hidden=(64, 64), num_bins=8, tail_bound=4.0), 512),
    "flow/maf": ("maf", (2,), dict(num_layers=8, activation="silu"), 512),
    "ebm/dsm (2D)": ("ebm_dsm", (2,), {}, 512),
    "diffusion (2D)": ("diffusion", (2,), {}, 512),
    "gan (2D)": ("gan", (2,), {}, 512),
}
IMAGE_FAMILIES = {  # name in the images preset -> family label
    "pixelcnn": "autoregressive/pixelcnn",
    "glow": "flow/glow",
    "vae": "vae",
    "diffusion": "diffusion (U-Net)",
    "ebm_dsm_ladder": "ebm/dsm ladder (conv)",
    "gan": "gan (DCGAN)",
}
CONV_OPTION = {"pixelcnn": "conv_impl", "glow": "conv_impl", "vae": "conv_impl", "diffusion": "conv_impl"}
CONV_OPTION["ebm_dsm_ladder"] = "conv_impl"
KEYS = (
    "family",
    "model",
    "variant",
    "batch_size",
    "compile_s",
    "steps_per_sec",
    "examples_per_sec",
    "gflop_per_step",
    "gflops",
    "emitters",
    "device",
)


def _specs() -> dict[str, tuple[str, tuple[int, ...], dict, int]]:
    from experiments.configs.images import CPU

    setup = CPU.setup
    specs = dict(FAMILIES)
    for name, label in IMAGE_FAMILIES.items():
        batch = setup.train_overrides.get(name, {}).get("batch_size", setup.train.batch_size)
        specs[label] = (name, (28, 28, 1), dict(setup.model_options.get(name, {})), batch)
    return specs


def variants(family: str, model: str) -> list[str]:
    out = ["default", "dispatch1", "other_emitters"]
    if model in CONV_OPTION:
        out.append("lax_conv")
    if model in ("realnvp", "nsf", "maf"):
        out += ["looped", "unscanned"]
    return out


def run_once(family: str, variant: str, steps: int, seed: int = 0) -> dict:
    """One measurement in this process (the parent runs each in a fresh one)."""
    import jax
    import numpy as np

    from gen_jax.models import make_model
    from gen_jax.training import (
        CPU_COMPILER_OPTIONS,
        TrainConfig,
        compiler_options_for,
        init_state,
        make_optimizer,
        make_train_step,
        step_flops,
        train,
    )

    name, shape, kwargs, batch = _specs()[family]
    kwargs = dict(kwargs)
    if variant == "lax_conv":
        kwargs[CONV_OPTION[name]] = "lax"
    if variant == "unscanned":
        kwargs["scan_layers"] = False
    if variant == "looped":
        kwargs["unroll_layers"] = 1
    model = make_model(name, shape, **kwargs)
    if len(shape) == 1:
        from gen_jax.evaluation.vector import load_vector_data

        data = load_vector_data("moons", 20_000, 1000, seed=0).train
    else:
        from gen_jax.data.images import load_images

        try:
            data = load_images("fashion_mnist", "train").images[:5000]
        except Exception:  # no dataset here: random 8-bit images cost the same
            data = np.random.default_rng(0).integers(0, 256, (5000, *shape), dtype=np.uint8)
    # steps per dispatch as the experiments run them (vectors: 100; images: 10 is plenty, each step
    # is long); vector models are timed over 10x the steps, their steps are short
    k = 1 if variant == "dispatch1" else (100 if len(shape) == 1 else 10)
    steps = 10 * steps if len(shape) == 1 else steps
    cfg = TrainConfig(
        steps=steps + k,
        batch_size=batch,
        lr=1e-4,
        warmup_steps=0,
        schedule="constant",
        steps_per_dispatch=k,
        checkpoint_every=None,
        progress=False,
        seed=seed,
    )
    # XLA's cost analysis of one optimizer step (the same step the loop scans), before training:
    # it decides the CPU compile options as the training loop does (`compiler_options_for`)
    opt = make_optimizer(cfg, model.update_groups)
    state = init_state(model, jax.random.key(0), data[:batch], opt, False)
    step = jax.jit(make_train_step(model, opt, None))
    flops = step_flops(step.lower(state, jax.numpy.asarray(data[:batch]), jax.random.key(1)))
    flops = math.nan if flops is None else flops
    default = compiler_options_for(cfg, flops)
    if variant == "other_emitters":  # the emitters the default does not pick for this step size
        cfg = dataclasses.replace(cfg, cpu_compiler_options={} if default else CPU_COMPILER_OPTIONS)
    options = compiler_options_for(cfg, flops)
    res = train(model, data, cfg)
    dev = jax.devices()[0]
    return dict(
        family=family,
        model=name,
        variant=variant,
        batch_size=batch,
        compile_s=res.first_dispatch_seconds,
        steps_per_sec=res.steps_per_sec,
        examples_per_sec=res.steps_per_sec * batch,
        gflop_per_step=flops / 1e9,
        gflops=flops / 1e9 * res.steps_per_sec,
        emitters="llvm" if options.get("xla_cpu_use_fusion_emitters") is False else "mlir",
        device=f"{dev.platform}:{dev.device_kind}",
    )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument(
        "--steps",
        type=int,
        default=60,
        help="steady-state steps timed after the first dispatch (vectors: 10x)",
    )
    p.add_argument("--families", help="comma-separated family labels or model names (default: all)")
    p.add_argument("--out", default="results/bench")
    p.add_argument("--child", nargs=2, metavar=("FAMILY", "VARIANT"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print("BENCH " + json.dumps(run_once(a.child[0], a.child[1], a.steps)), flush=True)
        return
    specs = _specs()
    chosen = list(specs)
    if a.families:
        want = set(a.families.split(","))
        chosen = [f for f in specs if f in want or specs[f][0] in want]
    rows = []
    for family in chosen:
        for variant in variants(family, specs[family][0]):
            runs = []
            for _ in range(a.runs):
                cmd = [sys.executable, "-m", "experiments.bench_families", "--child", family, variant]
                out = subprocess.run(cmd + ["--steps", str(a.steps)], capture_output=True, text=True)
                line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH ")), None)
                if out.returncode != 0 or line is None:
                    raise RuntimeError(f"{family}/{variant} failed:\n{out.stderr[-3000:]}")
                runs.append(json.loads(line[len("BENCH ") :]))
            row = dict(runs[0])
            for key in ("compile_s", "steps_per_sec", "examples_per_sec", "gflops"):
                row[key] = statistics.median(r[key] for r in runs)
            rows.append(row)
            print(
                f"{family:26s} {variant:10s} compile {row['compile_s']:6.1f}s  "
                f"{row['steps_per_sec']:8.1f} steps/s  {row['examples_per_sec']:9.0f} ex/s  "
                f"{row['gflops']:6.1f} GFLOP/s",
                flush=True,
            )
    write(Path(a.out), rows, a.runs, a.steps)


def write(out: Path, rows: list[dict], runs: int, steps: int) -> None:
    from gen_jax.evaluation.tables import machine_description, markdown_table, write_results

    # XLA's cost analysis counts the body of a loop once, so a flow whose layers run under lax.scan
    # reports one layer's flops: every variant of a family does the same arithmetic, so each gets
    # the family's largest count (the unscanned variant's, where there is one)
    flop = {}
    for r in rows:
        flop[r["family"]] = max(flop.get(r["family"], 0.0), r["gflop_per_step"] or 0.0)
    for r in rows:
        r["gflop_per_step"] = flop[r["family"]] or None
        r["gflops"] = r["gflop_per_step"] * r["steps_per_sec"] if r["gflop_per_step"] else None
    base = {(r["family"]): r for r in rows if r["variant"] == "default"}
    for r in rows:
        b = base.get(r["family"])
        r["speedup"] = b["steps_per_sec"] / r["steps_per_sec"] if b and r["steps_per_sec"] else None
    cols = [
        ("family", "family"),
        ("variant", "variant"),
        ("batch_size", "batch"),
        ("compile_s", "compile s"),
        ("steps_per_sec", "steps/s"),
        ("examples_per_sec", "examples/s"),
        ("gflop_per_step", "GFLOP / step"),
        ("gflops", "GFLOP/s"),
        ("emitters", "emitters"),
        ("speedup", "default is x faster"),
    ]
    head = (
        f"Train-step throughput per family: medians of {runs} fresh processes, {steps} steady-state steps "
        "each after the first dispatch (compile s: to the end of the first dispatch). GFLOP / step from "
        "XLA's cost analysis of the compiled step, the same for every variant of a family (the analysis "
        "counts a scanned loop's body once, so the unscanned variant's count is used). Variants change "
        "one thing against `default` (gen_jax as configured): `dispatch1` one step per dispatch instead "
        "of a scanned block; `other_emitters` the XLA:CPU fusion emitters gen_jax does not pick for a "
        "step of this size (it compiles steps under 0.25 GFLOP with the earlier LLVM emitters, larger "
        "ones with XLA's MLIR emitters; the emitters column says which ran); `lax_conv` XLA's native "
        "convolution instead of the im2col form; `looped` a flow's layer "
        "scan as a loop instead of unrolled; `unscanned` flow layers chained in Python instead of "
        f"lax.scan. Machine: {machine_description()}.\n\n"
    )
    md = head + markdown_table(
        rows,
        cols,
        digits={
            "compile_s": 1,
            "steps_per_sec": 1,
            "examples_per_sec": 0,
            "gflop_per_step": 3,
            "gflops": 1,
            "speedup": 2,
        },
    )
    write_results(out, rows, KEYS + ("speedup",), md, name="families")
    print(md)


if __name__ == "__main__":
    main()
