"""Diffusion's likelihoods on the 2D toys: the bound, the probability-flow ODE, and how they relate.

    python -m experiments.diffusion_likelihood                       # make diffusion (moons)
    python -m experiments.diffusion_likelihood datasets=[moons,checkerboard]

The diffusion model and the NSF are `make toy`'s runs (the `full` toy2d preset, reused when trained
there); on the same 10,000 test points:
- the bound NLL and the ODE NLL, each ± its standard error, and their paired difference; the same for
  the bound with `precise_samples` stratified times per point (`MonteCarloBound`), whose Monte Carlo
  noise is far smaller;
- the ODE density's mass on the plotting box; the NSF's NLL and the ODE's distance to it;
- the ODE's cost: seconds for the test points once compiled (compile timed apart), NFE per point;
- the Hutchinson ODE (Rademacher and Gaussian probes, one per point): NLL and per-point spread;
- the samplers: seconds for `sample_timing` samples (ancestral, Euler-Maruyama, the adaptive ODE).
Writes results/diffusion/results.json, results.md and <dataset>.png.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from experiments.configs.diffusion import PRESETS, DiffusionStudyConfig
from gen_jax.core.capabilities import ProbabilityFlow
from gen_jax.evaluation import evaluate_nll
from gen_jax.evaluation.cli import run_cli
from gen_jax.evaluation.fit import fit_and_evaluate
from gen_jax.evaluation.runs import make_spec, train_or_reuse
from gen_jax.evaluation.tables import machine_description, markdown_table, write_results
from gen_jax.evaluation.vector import load_vector_data
from gen_jax.evaluation.views import spec_view
from gen_jax.likelihood.grid import evaluate_on_grid
from gen_jax.plotting import density_and_samples_figure
from gen_jax.sampling.diffusion import sde_sample

COLUMNS = [
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
    ("elbo_precise_nll", "bound NLL (precise)"),
    ("elbo_precise_minus_ode", "precise bound - ODE"),
    ("elbo_precise_minus_ode_se", "± se "),
    ("hutchinson_rademacher_nll", "Hutch. Rad. NLL"),
    ("hutchinson_rademacher_spread", "± per point"),
    ("hutchinson_gaussian_nll", "Hutch. Gauss. NLL"),
    ("hutchinson_gaussian_spread", "± per point "),
]
COST_COLUMNS = [
    ("dataset", "dataset"),
    ("diffusion_steps", "steps"),
    ("diffusion_train_seconds", "diffusion train s"),
    ("nsf_train_seconds", "NSF train s"),
    ("ode_seconds", "ODE s (test set)"),
    ("ode_compile_seconds", "ODE compile s"),
    ("nfe_mean", "NFE mean"),
    ("nfe_median", "NFE median"),
    ("nfe_max", "NFE max"),
    ("sample_seconds_ancestral", "ancestral s"),
    ("sample_seconds_euler_maruyama", "Euler-Maruyama s"),
    ("sample_seconds_ode", "ODE sampler s"),
    ("sample_nfe_ode", "ODE sampler NFE"),
]


def _timed(fn, *args):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - t0


def ode_pass(flow: ProbabilityFlow, params, x, key, chunk: int = 2048) -> dict:
    """The ODE log-likelihood of every point with its NFE: compiled ahead (timed apart), then one timed
    pass in chunks of one static shape, each chunk its own vmapped adaptive solve."""
    n, pad = x.shape[0], (-x.shape[0]) % chunk
    xp = jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]) if pad else x
    fn = lambda p, xb, k: flow.log_prob_and_nfe(p, xb, k, flow.config)
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(params, xp[:chunk], key).compile()
    compile_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    outs = [
        jax.block_until_ready(compiled(params, xp[i : i + chunk], jax.random.fold_in(key, i // chunk)))
        for i in range(0, n + pad, chunk)
    ]
    lp = np.concatenate([np.asarray(o[0]) for o in outs])[:n]
    nfe = np.concatenate([np.asarray(o[1]) for o in outs])[:n]
    if not np.all(np.isfinite(lp)):
        raise FloatingPointError(f"{int(np.sum(~np.isfinite(lp)))} non-finite ODE log-densities")
    return dict(log_prob=lp, nfe=nfe, seconds=time.perf_counter() - t0, compile_seconds=compile_seconds)


def _paired(a, b) -> tuple[float, float]:
    d = np.asarray(a) - np.asarray(b)
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))


def run_dataset(name: str, cfg: DiffusionStudyConfig, fresh: bool) -> dict:
    """Every number of one dataset (see the module docstring)."""
    toy = cfg.toy
    data = load_vector_data(name, toy.n_train, toy.n_test, toy.seed)
    x, key = jnp.asarray(data.test), jax.random.key(toy.seed + 7)
    runs, rows = {}, {}
    for m in ("diffusion", "nsf"):
        spec = make_spec(
            m,
            (2,),
            toy.model_options,
            toy.train,
            toy.train_overrides,
            {"dataset": data.name, "digest": data.digest},
            toy.seed,
        )
        rows[m] = fit_and_evaluate(spec, data, toy.out, dataclasses.replace(toy.eval, seed=toy.seed), fresh)
        runs[m] = train_or_reuse(spec, toy.out, data.train, eval_data=data.test)
    run = runs["diffusion"]
    model, params, flow = run.model, run.params, run.model.get(ProbabilityFlow)
    row = {
        "dataset": data.name,
        "true_entropy": data.true_entropy,
        "diffusion_train_seconds": run.train_seconds,
        "diffusion_steps": run.steps,
    }
    ode_row = next(r for r in rows["diffusion"] if r["model"].endswith("/ode"))
    row["ode_grid_mass"] = ode_row["grid_mass"]
    row["elbo_nll"], row["elbo_nll_se"], elbo = evaluate_nll(model, params, x, key)
    res = ode_pass(flow, params, x, key)
    ode, nfe = -res["log_prob"], res["nfe"]
    row.update(
        ode_nll=float(ode.mean()),
        ode_nll_se=float(ode.std(ddof=1) / np.sqrt(len(ode))),
        ode_seconds=res["seconds"],
        ode_compile_seconds=res["compile_seconds"],
        nfe_mean=float(nfe.mean()),
        nfe_median=float(np.median(nfe)),
        nfe_max=float(nfe.max()),
    )
    row["elbo_minus_ode"], row["elbo_minus_ode_se"] = _paired(elbo, ode)
    _, precise = spec_view(model, f"bound:samples={cfg.precise_samples}")
    row["elbo_precise_nll"], _, elbo_p = evaluate_nll(precise, params, x, key, 256)
    row["elbo_precise_minus_ode"], row["elbo_precise_minus_ode_se"] = _paired(elbo_p, ode)
    row["elbo_noise_sd"] = float(np.std(elbo - elbo_p))
    for probe in ("rademacher", "gaussian"):
        _, view = spec_view(model, f"ode:divergence=hutchinson,probe={probe}")
        nll, _, per = evaluate_nll(view, params, x, key)
        row[f"hutchinson_{probe}_nll"], row[f"hutchinson_{probe}_spread"] = nll, float(np.std(per - ode))
    nsf = rows["nsf"][0]
    row.update(
        nsf_nll=nsf["test_nll"],
        nsf_nll_se=nsf["test_nll_se"],
        ode_minus_nsf=row["ode_nll"] - nsf["test_nll"],
        nsf_train_seconds=nsf["train_seconds"],
        nsf_grid_mass=nsf["grid_mass"],
    )
    row.update(sampler_seconds(model, flow, params, key, cfg.sample_timing))
    figure(Path(cfg.out) / f"{data.name}.png", data, toy.eval.grid_n, rows["nsf"] + rows["diffusion"])
    return row


def sampler_seconds(model, flow: ProbabilityFlow, params, key, n: int) -> dict:
    """Seconds per n samples of each sampler, once compiled."""
    out, steps = {}, model.info.get("sample_steps", 500)
    for method in ("ancestral", "euler_maruyama"):
        f = jax.jit(lambda p, k, m=method: sde_sample(flow.process, p, k, n, model.event_shape, steps, m))
        _timed(f, params, key)
        out[f"sample_seconds_{method}"] = _timed(f, params, key)[1]
    from gen_jax.sampling.diffusion import ode_sample

    f = jax.jit(lambda p, k: ode_sample(flow.process, p, k, n, model.event_shape, flow.config))
    _timed(f, params, key)
    (_, nfe), out["sample_seconds_ode"] = _timed(f, params, key)
    out["sample_nfe_ode"] = float(np.mean(nfe))
    return out


def figure(path: Path, data, grid_n: int, rows: list[dict]) -> None:
    """Densities (truth, NSF, bound, ODE) and samples."""
    panels = [
        dict(
            label=f"truth (H={data.true_entropy:.3f})",
            log_density=evaluate_on_grid(data.true_log_prob, data.box, grid_n),
            samples=data.test[:2000],
        )
    ]
    for r in rows:
        label = f"{r['model']} ({r['likelihood_kind']})\nNLL {r['test_nll']:.3f}, mass {r['grid_mass']:.3f}"
        panels.append(dict(label=label, log_density=r["log_density"], samples=r["samples"][:2000]))
    density_and_samples_figure(
        path, f"{data.name}: the diffusion model's bound and ODE beside the NSF", data.box, panels
    )


def run(cfg: DiffusionStudyConfig, fresh: bool = False) -> list[dict]:
    """Every dataset; writes results.json and results.md."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [run_dataset(name, cfg, fresh) for name in cfg.datasets]
    head = (
        "Diffusion on the 2D toys (`make toy`'s runs); NLL in nats on the same test points. `bound - ODE`: "
        "mean paired difference of the per-point NLLs (positive: the bound is looser) with its standard "
        f"error; the precise bound uses {cfg.precise_samples} stratified times per point. ODE: the model's "
        "solver and tolerance, exact divergence; grid mass on the plotting box. Hutchinson: one probe per "
        "point; `± per point` is its per-point spread around the exact-divergence NLL.\n"
        f"Machine: {machine_description()}.\n\n"
    )
    md = head + markdown_table(
        rows,
        COLUMNS,
        digits={
            "elbo_minus_ode": 4,
            "elbo_minus_ode_se": 4,
            "ode_nll_se": 4,
            "elbo_precise_minus_ode": 4,
            "elbo_precise_minus_ode_se": 4,
        },
    )
    md += "\nCost (seconds on this machine; NFE per point):\n\n" + markdown_table(
        rows, COST_COLUMNS, digits={}
    )
    write_results(out, rows, None, md)
    print(md, flush=True)
    return rows


def main(argv=None) -> None:
    """The command line (see the module docstring)."""
    run_cli(
        "diffusion_likelihood",
        PRESETS,
        run,
        argv,
        default_preset="default",
        shorthands={"--datasets": ("datasets", "list")},
        doc=__doc__,
    )


if __name__ == "__main__":
    main()
