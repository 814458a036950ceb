"""Diffusion's likelihoods on the 2D toys: the bound, the probability-flow ODE, and how they relate.

    python -m experiments.diffusion_likelihood                  # make diffusion (moons)
    python -m experiments.diffusion_likelihood --datasets moons,checkerboard --resume

For each dataset, the diffusion model and the NSF are trained exactly as in `make toy` (the
"full" preset of experiments/configs/toy2d.py, same run directories layout, own output folder);
then, on the same 10,000 test points:

- the bound (ELBO) NLL and the ODE NLL, each +- its standard error, and their paired difference
  (bound minus ODE, +- the standard error of the per-point differences); the same for the bound
  with 1024 stratified times per point, whose Monte Carlo noise is 4x smaller;
- the ODE density's mass on the plotting box (midpoint rule, `ode_grid_n` cells a side);
- the NSF's NLL and the ODE's distance to it;
- the ODE's cost: seconds for the 10,000 points once compiled (compile timed apart), and the
  number of function evaluations (NFE) per point (mean, median, max);
- the Hutchinson ODE (Rademacher and Gaussian probes, one probe per point): its NLL and the
  per-point spread around the exact-divergence value;
- the samplers: seconds for 5,000 samples (ancestral and Euler-Maruyama with the model's
  `sample_steps`, the adaptive ODE with its NFE).

Writes results/diffusion/results.json, results.md and <dataset>.png (densities and samples).
`--resume` reuses finished training runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from experiments.common import (
    build_model,
    fit_and_evaluate,
    load_vector_data,
    machine_description,
    markdown_table,
    train_config_for,
    write_results,
)
from experiments.configs.toy2d import get_config
from gen_jax.likelihood.grid import evaluate_on_grid
from gen_jax.models import evaluate_nll, make_model
from gen_jax.plotting import density_and_samples_figure
from gen_jax.sampling.diffusion import ode_sample, sde_sample
from gen_jax.training import restore_params

PRECISE_ELBO_SAMPLES = 1024  # times per point of the low-noise bound

KEYS = (
    "dataset",
    "true_entropy",
    "elbo_nll",
    "elbo_nll_se",
    "ode_nll",
    "ode_nll_se",
    "elbo_minus_ode",
    "elbo_minus_ode_se",
    "ode_grid_mass",
    "ode_grid_n",
    "elbo_below_ode_fraction",
    "elbo_precise_nll",
    "elbo_precise_nll_se",
    "elbo_precise_minus_ode",
    "elbo_precise_minus_ode_se",
    "elbo_noise_sd",
    "nsf_nll",
    "nsf_nll_se",
    "ode_minus_nsf",
    "ode_seconds_10k",
    "ode_compile_seconds",
    "nfe_mean",
    "nfe_median",
    "nfe_max",
    "hutchinson_rademacher_nll",
    "hutchinson_rademacher_spread",
    "hutchinson_gaussian_nll",
    "hutchinson_gaussian_spread",
    "sample_seconds_ancestral",
    "sample_seconds_euler_maruyama",
    "sample_seconds_ode",
    "sample_nfe_ode",
    "diffusion_train_seconds",
    "diffusion_steps",
    "nsf_train_seconds",
    "nsf_grid_mass",
)
COLUMNS = [  # the likelihoods
    ("dataset", "dataset"),
    ("true_entropy", "H(p)"),
    ("nsf_nll", "NSF NLL"),
    ("ode_nll", "ODE NLL"),
    ("ode_nll_se", "± se"),
    ("ode_minus_nsf", "ODE - NSF"),
    ("ode_grid_mass", "ODE grid mass"),
    ("elbo_nll", "bound NLL"),
    ("elbo_minus_ode", "bound - ODE"),
    ("elbo_minus_ode_se", "± se"),
    ("elbo_precise_nll", "bound NLL (1024 t)"),
    ("elbo_precise_minus_ode", "bound (1024 t) - ODE"),
    ("elbo_precise_minus_ode_se", "± se "),
    ("hutchinson_rademacher_nll", "Hutch. Rad. NLL"),
    ("hutchinson_rademacher_spread", "± per point"),
    ("hutchinson_gaussian_nll", "Hutch. Gauss. NLL"),
    ("hutchinson_gaussian_spread", "± per point "),
]
COST_COLUMNS = [  # seconds on this machine
    ("dataset", "dataset"),
    ("diffusion_steps", "steps"),
    ("diffusion_train_seconds", "diffusion train s"),
    ("nsf_train_seconds", "NSF train s"),
    ("ode_seconds_10k", "ODE s / 10k points"),
    ("ode_compile_seconds", "ODE compile s"),
    ("nfe_mean", "NFE mean"),
    ("nfe_median", "NFE median"),
    ("nfe_max", "NFE max"),
    ("sample_seconds_ancestral", "ancestral s / 5k"),
    ("sample_seconds_euler_maruyama", "Euler-Maruyama s / 5k"),
    ("sample_seconds_ode", "ODE sampler s / 5k"),
    ("sample_nfe_ode", "ODE sampler NFE"),
]


def _timed(fn, *args):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - t0


def _chunks(x: jax.Array, size: int) -> list[jax.Array]:
    """x in chunks of one static shape (the last padded with copies of the last row)."""
    n = x.shape[0]
    pad = (-n) % size
    xp = jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]) if pad else x
    return [xp[i : i + size] for i in range(0, n + pad, size)]


def ode_pass(model, params, x: jax.Array, key: jax.Array, chunk: int = 2048) -> dict:
    """The ODE log-likelihood of every point of x with its NFE: compiled ahead (timed apart), then
    one timed pass over x in chunks of `chunk` points, each chunk its own vmapped adaptive solve."""
    fn = model.parts["ode_log_prob_and_nfe"]
    parts = _chunks(x, chunk)
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(params, parts[0], key).compile()
    compile_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    outs = [
        jax.block_until_ready(compiled(params, c, jax.random.fold_in(key, i))) for i, c in enumerate(parts)
    ]
    seconds = time.perf_counter() - t0
    n = x.shape[0]
    lp = np.concatenate([np.asarray(o[0]) for o in outs])[:n]
    nfe = np.concatenate([np.asarray(o[1]) for o in outs])[:n]
    return dict(log_prob=lp, nfe=nfe, seconds=seconds, compile_seconds=compile_seconds)


def run_dataset(name: str, out: Path, resume: bool, preset: str = "full") -> dict:
    cfg = get_config(preset)
    data = load_vector_data(name, cfg.n_train, cfg.n_test, cfg.seed)
    x = jnp.asarray(data.test)
    key = jax.random.key(cfg.seed + 7)
    row = {"dataset": data.name, "true_entropy": data.true_entropy}
    trained = {}
    for model_name in ("diffusion", "nsf"):
        model = build_model(model_name, (data.dim,), cfg.model_kwargs)
        tcfg = train_config_for(model_name, cfg.train, cfg.train_overrides)
        tcfg = dataclasses.replace(tcfg, seed=cfg.seed)
        workdir = out / "runs" / data.name / model_name
        rows = fit_and_evaluate(model, data, tcfg, workdir, resume, cfg.grid_n, 2000, cfg.seed)
        params = restore_params(model, workdir, data.train[: tcfg.init_examples], tcfg)
        trained[model_name] = (model, params, rows)
        print(f"{data.name} {model_name}: trained in {rows[0]['train_seconds']:.1f}s", flush=True)

    model, params, rows = trained["diffusion"]
    views = dict(model.views())
    row.update(diffusion_train_seconds=rows[0]["train_seconds"], diffusion_steps=rows[0]["steps"])
    ode_row = next(r for r in rows if r["model"].endswith("/ode"))
    row["ode_grid_mass"], row["ode_grid_n"] = ode_row["grid_mass"], ode_row["log_density"].shape[0]
    row["elbo_nll"], row["elbo_nll_se"], elbo = evaluate_nll(views[model.name], params, x, key)
    res = ode_pass(model, params, x, key)
    ode, nfe = -res["log_prob"], res["nfe"]
    if not np.all(np.isfinite(ode)):
        raise FloatingPointError(
            f"{data.name}: {int(np.sum(~np.isfinite(ode)))} non-finite ODE log-densities"
        )
    row["ode_nll"], row["ode_nll_se"] = float(ode.mean()), float(ode.std(ddof=1) / np.sqrt(len(ode)))
    row["ode_seconds_10k"], row["ode_compile_seconds"] = res["seconds"], res["compile_seconds"]
    row.update(nfe_mean=float(nfe.mean()), nfe_median=float(np.median(nfe)), nfe_max=float(nfe.max()))
    d = elbo - ode
    row["elbo_minus_ode"], row["elbo_minus_ode_se"] = float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))
    row["elbo_below_ode_fraction"] = float(np.mean(d >= 0))
    # the same bound with many more times per point: its Monte Carlo noise (which makes the paired
    # difference above noisy, and the grid mass of exp(bound estimate) exceed 1) mostly averaged out
    kwargs = {**cfg.model_kwargs.get("diffusion", {}), "elbo_samples": PRECISE_ELBO_SAMPLES}
    precise = make_model("diffusion", (data.dim,), **kwargs)
    view = model.replace(log_prob=precise.log_prob, estimators={})
    row["elbo_precise_nll"], row["elbo_precise_nll_se"], elbo_p = evaluate_nll(view, params, x, key, 256)
    d = elbo_p - ode
    row["elbo_precise_minus_ode"] = float(d.mean())
    row["elbo_precise_minus_ode_se"] = float(d.std(ddof=1) / np.sqrt(len(d)))
    row["elbo_noise_sd"] = float(np.std(elbo - elbo_p))  # per point, at the model's elbo_samples

    for probe in ("rademacher", "gaussian"):
        kwargs = {**cfg.model_kwargs.get("diffusion", {}), "divergence": "hutchinson", "probe": probe}
        hutch = make_model("diffusion", (data.dim,), **kwargs).estimators["ode"]
        view = model.replace(kind=hutch.kind, log_prob=hutch.log_prob, estimators={})
        nll, _, per = evaluate_nll(view, params, x, key)
        row[f"hutchinson_{probe}_nll"] = nll
        row[f"hutchinson_{probe}_spread"] = float(np.std(per - ode))

    nsf_model, _, nsf_rows = trained["nsf"]
    row.update(
        nsf_nll=nsf_rows[0]["test_nll"],
        nsf_nll_se=nsf_rows[0]["test_nll_se"],
        ode_minus_nsf=row["ode_nll"] - nsf_rows[0]["test_nll"],
        nsf_train_seconds=nsf_rows[0]["train_seconds"],
        nsf_grid_mass=nsf_rows[0]["grid_mass"],
    )

    panels = [
        dict(
            label=f"truth (H={data.true_entropy:.3f})",
            log_density=evaluate_on_grid(data.true_log_prob, data.box, cfg.grid_n),
            samples=data.test[:2000],
        )
    ]
    for r in nsf_rows + rows:
        label = f"{r['model']} ({r['likelihood_kind']})\nNLL {r['test_nll']:.3f}, mass {r['grid_mass']:.3f}"
        panels.append(dict(label=label, log_density=r["log_density"], samples=r["samples"]))
    title = f"{data.name}: the diffusion model's bound and ODE densities beside the NSF"
    density_and_samples_figure(out / f"{data.name}.png", title, data.box, panels)

    process, n = model.parts["process"], 5000
    steps = model.info.get("sample_steps", 500)
    for method in ("ancestral", "euler_maruyama"):
        f = jax.jit(lambda p, k, m=method: sde_sample(process, p, k, n, (data.dim,), steps, m))
        _timed(f, params, key)
        row[f"sample_seconds_{method}"] = _timed(f, params, key)[1]
    f = jax.jit(lambda p, k: ode_sample(process, p, k, n, (data.dim,), model.parts["ode_config"]))
    _timed(f, params, key)
    (_, nfe_s), row["sample_seconds_ode"] = _timed(f, params, key)
    row["sample_nfe_ode"] = float(np.mean(nfe_s))
    return row


def _markdown(rows: list[dict]) -> str:
    head = (
        "Diffusion on the 2D toys, `make toy`'s training (the `full` preset); NLL in nats on the same "
        "10,000 test points. `bound - ODE`: mean paired difference of the per-point NLLs (positive: the "
        "bound is looser) with its standard error; the bound uses the model's stratified times per "
        "point, `1024 t` 1024 of them. ODE: Tsit5, rtol = atol = 1e-5, exact divergence; grid mass on "
        "the plotting box. Hutchinson: one probe per point; `± per point` is the spread of its per-point "
        "NLL around the exact-divergence one.\n"
        f"Machine: {machine_description()}.\n\n"
    )
    digits = {k: 4 for k in ("elbo_minus_ode", "elbo_minus_ode_se", "elbo_precise_minus_ode")}
    digits.update(elbo_precise_minus_ode_se=4, ode_nll_se=4)
    cost = {k: 1 for k, _ in COST_COLUMNS if k.endswith("seconds") or k.startswith(("nfe", "sample_"))}
    cost.update(ode_seconds_10k=2, ode_compile_seconds=2)
    return (
        head
        + markdown_table(rows, COLUMNS, digits=digits)
        + "\nCost (seconds on this machine; NFE per point, adaptive Tsit5):\n\n"
        + markdown_table(rows, COST_COLUMNS, digits=cost)
    )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="moons", help="comma-separated 2D toy names")
    p.add_argument("--preset", default="full", help="toy2d preset whose training settings are used")
    p.add_argument("--out", default="results/diffusion")
    p.add_argument("--resume", action="store_true", help="reuse finished runs and continue interrupted ones")
    a = p.parse_args(argv)
    out = Path(a.out)
    rows = []
    for name in a.datasets.split(","):
        rows.append(run_dataset(name, out, a.resume, a.preset))
        print({k: rows[-1][k] for k in KEYS}, flush=True)
    write_results(out, rows, KEYS, _markdown(rows))
    print((out / "results.md").read_text())


if __name__ == "__main__":
    main()
