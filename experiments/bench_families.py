"""Throughput of every model family's train step, and what each optimization buys.

    python -m experiments.bench_families                    # make bench-families
    python -m experiments.bench_families --families vae,glow --runs 1 --steps 40
    python -m experiments.bench_families "families=[pixelcnn,glow]" "variants=[bf16]"   # default + bf16
    python -m experiments.bench_families --preset smoke probe_n=512   # any field of configs/bench_families.py

For each family (at the size its experiment trains: the bench flows, and the `cpu` preset of the
image models) and each variant of the one training loop, a fresh subprocess reports:

- `compile_s`: time to the end of the first dispatch (tracing + XLA compilation + one dispatch);
- `steps_per_sec` / `examples_per_sec`: steady state, after the first dispatch;
- `gflop_per_step`: XLA's own cost analysis of one compiled optimizer step (forward, backward and
  update; it counts a lax.scan body once, so each family gets its unscanned variant's count), and
  `gflops` = gflop_per_step x steps/s, the arithmetic rate achieved;
- `probe_fraction`: gflops over `probe_gflops`, the rate of a jitted float32 2048 x 2048 matmul
  on the same device in the same run (`experiments.benchlib.matmul_gflops`, fresh processes too).

Variants (`VARIANTS`) each change one thing against `default` (the configuration gen_jax uses):
`dispatch1` (the host round trip per step that the scanned loop removes), `other_emitters` (the
XLA:CPU fusion emitters `gen_jax.training.compiler_options_for` does not pick for a step of this
size), and one per builder option that the family's model takes (`gen_jax.model_options`):
`lax_conv` (`conv_impl`, images only), `looped` (`unroll_layers`), `unscanned` (`scan_layers`: a
flow's layers chained in Python, compile time growing with depth), `bf16` (`compute_dtype`).

Medians of `runs` runs. Writes results/bench/families.json, families.md and families_config.yaml.
"""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

from experiments import benchlib
from experiments.configs.bench_families import PRESETS, BenchFamiliesConfig
from gen_jax.evaluation.cli import run_cli

MODULE = "experiments.bench_families"
MEDIANS = ("compile_s", "steps_per_sec", "examples_per_sec", "gflops")  # over runs; the rest: the first's

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
# variant -> (the builder option it sets and its value, or None; what it changes against `default`)
VARIANTS: dict[str, tuple[tuple | None, str]] = {
    "dispatch1": (None, "one step per dispatch instead of a scanned block"),
    "other_emitters": (
        None,
        "the XLA:CPU fusion emitters gen_jax does not pick for a step of this size (it compiles steps "
        "under 0.25 GFLOP with the earlier LLVM emitters, larger ones with XLA's MLIR emitters; the "
        "emitters column says which ran)",
    ),
    "lax_conv": (("conv_impl", "lax"), "XLA's native convolution instead of the im2col form"),
    "looped": (("unroll_layers", 1), "a flow's layer scan as a loop instead of unrolled"),
    "unscanned": (("scan_layers", False), "flow layers chained in Python instead of lax.scan"),
    "bf16": (("compute_dtype", "bfloat16"), "the networks in bfloat16 (a speed-up shows as a ratio below 1)"),
}
KEYS = tuple(
    "family model variant batch_size compile_s steps_per_sec examples_per_sec gflop_per_step gflops "
    "emitters device".split()
)


def _specs() -> dict[str, tuple[str, tuple[int, ...], dict, int]]:
    from experiments.configs.images import CPU

    setup = CPU.setup
    specs = dict(FAMILIES)
    for name, label in IMAGE_FAMILIES.items():
        batch = setup.train_overrides.get(name, {}).get("batch_size", setup.train.batch_size)
        specs[label] = (name, (28, 28, 1), dict(setup.model_options.get(name, {})), batch)
    return specs


def variants(family: str) -> list[str]:
    """The variants measured for `family`: `default`, `dispatch1` and `other_emitters` for every
    family, and each option's variant where the family's model takes that option (read from
    `gen_jax.model_options`; `conv_impl` on images only, the vector models convolve nothing)."""
    from gen_jax import model_options

    name, shape, _, _ = _specs()[family]
    options = model_options(name)
    out = ["default"]
    for variant, (setting, _) in VARIANTS.items():
        if setting is None or (setting[0] in options and (setting[0] != "conv_impl" or len(shape) == 3)):
            out.append(variant)
    return out


def run_once(family: str, variant: str, steps: int, seed: int = 0) -> dict:
    """One measurement in this process (the parent runs each in a fresh one)."""
    from gen_jax.evaluation.vector import load_vector_data
    from gen_jax.models import make_model
    from gen_jax.training import CPU_COMPILER_OPTIONS, TrainConfig, compiler_options_for, train

    name, shape, kwargs, batch = _specs()[family]
    setting = VARIANTS.get(variant, (None, ""))[0]
    model = make_model(name, shape, **(dict(kwargs, **{setting[0]: setting[1]}) if setting else kwargs))
    vectors = len(shape) == 1
    data = (
        load_vector_data("moons", 20_000, 1000, seed=0).train
        if vectors
        else benchlib.train_images(5000, shape)
    )
    # steps per dispatch as the experiments run them (vectors: 100; images: 10 is plenty, each step
    # is long); vector models are timed over 10x the steps, their steps are short
    k = 1 if variant == "dispatch1" else (100 if vectors else 10)
    steps = 10 * steps if vectors else steps
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
    flops = benchlib.train_step_flops(model, cfg, data)
    default = compiler_options_for(cfg, flops)
    if variant == "other_emitters":  # the emitters the default does not pick for this step size
        cfg = dataclasses.replace(cfg, cpu_compiler_options={} if default else CPU_COMPILER_OPTIONS)
    options = compiler_options_for(cfg, flops)
    res = train(model, data, cfg)
    return dict(
        family=family,
        model=model.name,
        variant=variant,
        batch_size=batch,
        compile_s=res.first_dispatch_seconds,
        steps_per_sec=res.steps_per_sec,
        examples_per_sec=res.steps_per_sec * batch,
        gflop_per_step=flops / 1e9,
        gflops=flops / 1e9 * res.steps_per_sec,
        emitters="llvm" if options.get("xla_cpu_use_fusion_emitters") is False else "mlir",
        device=benchlib.device_name(),
    )


def run(cfg: BenchFamiliesConfig, fresh: bool = False) -> list[dict]:
    """The matmul probe, then every variant of each chosen family, each measured in `cfg.runs` fresh
    processes (medians); writes families.json, .md and _config.yaml. `fresh`: nothing is reused."""
    specs = _specs()
    valid = [*specs, *dict.fromkeys(s[0] for s in specs.values())]
    benchlib.check_choices("families", cfg.families, valid, allow_empty=True)
    benchlib.check_choices("variants", cfg.variants, ["default", *VARIANTS], allow_empty=True)
    chosen = [f for f in specs if not cfg.families or f in cfg.families or specs[f][0] in cfg.families]
    cmd = benchlib.child_command(MODULE, "matmul_gflops", n=cfg.probe_n)
    probe = statistics.median(benchlib.run_child(cmd, "the matmul probe")["gflops"] for _ in range(cfg.runs))
    print(f"matmul probe ({cfg.probe_n} x {cfg.probe_n} float32): {probe:.1f} GFLOP/s", flush=True)
    rows = []
    for family in chosen:
        for variant in [v for v in variants(family) if v == "default" or v in (cfg.variants or [v])]:
            cmd = benchlib.child_command(MODULE, "run_once", family=family, variant=variant, steps=cfg.steps)
            runs = [benchlib.run_child(cmd, f"{family}/{variant}") for _ in range(cfg.runs)]
            rows.append(row := dict(runs[0], **{k: statistics.median(r[k] for r in runs) for k in MEDIANS}))
            print(
                f"{family:26s} {variant:10s} compile {row['compile_s']:6.1f}s  "
                f"{row['steps_per_sec']:8.1f} steps/s  {row['examples_per_sec']:9.0f} ex/s  "
                f"{row['gflops']:6.1f} GFLOP/s",
                flush=True,
            )
    write(Path(cfg.out), rows, cfg.runs, cfg.steps, probe=probe, probe_n=cfg.probe_n)
    benchlib.save_config(cfg.out, "families", cfg)
    return rows


SHORTHANDS = benchlib.shorthands("runs steps probe_n out", "families variants")  # the earlier flags


def main(argv=None) -> None:
    """The command line (see the module docstring); `--child` is one measurement (`child_command`)."""
    if not benchlib.answer_child(argv, {"run_once": run_once, "matmul_gflops": benchlib.matmul_gflops}):
        run_cli("bench_families", PRESETS, run, argv, shorthands=SHORTHANDS, doc=__doc__)


COLUMNS = [
    ("family", "family"),
    ("variant", "variant"),
    ("batch_size", "batch"),
    ("compile_s", "compile s"),
    ("steps_per_sec", "steps/s"),
    ("examples_per_sec", "examples/s"),
    ("gflop_per_step", "GFLOP / step"),
    ("gflops", "GFLOP/s"),
    ("probe_fraction", "fraction of the matmul probe"),
    ("emitters", "emitters"),
    ("speedup", "default is x faster"),
]
DIGITS = dict(compile_s=1, steps_per_sec=1, examples_per_sec=0, gflop_per_step=3, gflops=1, speedup=2)


def write(
    out: Path, rows: list[dict], runs: int, steps: int, probe: float | None = None, probe_n: int = 2048
) -> None:
    """families.json and families.md: one flop count per family, each variant's speed-up of the
    default over it, and each row's GFLOP/s as a fraction of the matmul probe (`probe` GFLOP/s)."""
    from gen_jax.evaluation.tables import machine_description, markdown_table, write_results

    # XLA's cost analysis counts the body of a loop once, so a flow whose layers run under lax.scan
    # reports one layer's flops: every variant of a family does the same arithmetic, so each gets
    # the family's largest count (the unscanned variant's, where there is one)
    flop = {}
    for r in rows:
        flop[r["family"]] = max(flop.get(r["family"], 0.0), r["gflop_per_step"] or 0.0)
    base = {r["family"]: r for r in rows if r["variant"] == "default"}
    for r in rows:
        r["gflop_per_step"] = flop[r["family"]] or None
        r["gflops"] = r["gflop_per_step"] * r["steps_per_sec"] if r["gflop_per_step"] else None
        r["probe_gflops"] = probe
        r["probe_fraction"] = r["gflops"] / probe if r["gflops"] and probe else None
        b = base.get(r["family"])
        r["speedup"] = b["steps_per_sec"] / r["steps_per_sec"] if b and r["steps_per_sec"] else None
    head = (
        f"Train-step throughput per family: medians of {runs} fresh processes, {steps} steady-state steps "
        "each after the first dispatch (compile s: to the end of the first dispatch). GFLOP / step from "
        "XLA's cost analysis of the compiled step, the same for every variant of a family (the analysis "
        "counts a scanned loop's body once, so the unscanned variant's count is used). Fraction of the "
        f"matmul probe: GFLOP/s over the rate of a jitted float32 {probe_n} x {probe_n} matmul on the same "
        f"device in the same run ({f'{probe:.1f} GFLOP/s' if probe else 'not measured'}, the median of "
        f"{runs} fresh processes). Variants change one thing against `default` (gen_jax as configured): "
        + "; ".join(f"`{v}` {what}" for v, (_, what) in VARIANTS.items())
        + f". Machine: {machine_description()}.\n\n"
    )
    md = head + markdown_table(rows, COLUMNS, digits={**DIGITS, "probe_fraction": 3})
    write_results(out, rows, KEYS + ("speedup", "probe_gflops", "probe_fraction"), md, name="families")
    print(md)


if __name__ == "__main__":
    main()
