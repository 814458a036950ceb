"""Is the image probability-flow ODE's bits/dim a property of the model or of the solver?

    python -m experiments.ode_ladder                 # make ode-ladder (the images study's diffusion run)
    python -m experiments.ode_ladder tolerances=[1e-3,3e-4,1e-4] n_images=1000

On the same test images, with the same dequantization draw and Hutchinson probe per image at every
rung, the ODE bits/dim at each tolerance of a ladder (rtol = atol), with its standard error, the
number of function evaluations and the seconds per rung; the change from each rung to the next,
paired; the bound on the same images, paired with each rung. On a subset, several probes per image
(the dequantization held fixed) separate the probe's variance from the variance between images. The
recommended default is the loosest rung whose paired change to the next is below that change's own
standard error; the table says whether the images preset uses it.
Writes results/ode_ladder/results.json and results.md.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from experiments.configs.ode_ladder import PRESETS, ODELadderConfig
from gen_jax.core import ConfigError, nats_to_bits_per_dim
from gen_jax.core.capabilities import ProbabilityFlow
from gen_jax.evaluation.cli import run_cli
from gen_jax.evaluation.images import D, image_spec, load_image_splits, trained_image_model
from gen_jax.evaluation.runs import cached, evaluation_cache, run_dir
from gen_jax.evaluation.tables import machine_description, markdown_table, write_results
from gen_jax.training import Progress

bpd = lambda nats: nats_to_bits_per_dim(np.asarray(nats, np.float64), D)


def per_image(fn, x, key, batch: int, progress=None) -> np.ndarray:
    """fn(x_batch, fold_in(key, i)) over batches of one static shape, concatenated (numpy)."""
    n, pad = len(x), (-len(x)) % batch
    xp = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)]) if pad else x
    out = []
    for i in range(0, n + pad, batch):
        out.append(
            jax.tree_util.tree_map(np.asarray, fn(jnp.asarray(xp[i : i + batch]), jax.random.fold_in(key, i)))
        )
        if progress is not None:
            progress.update(1)
    return jax.tree_util.tree_map(lambda *a: np.concatenate(a)[:n], *out)


def rung(flow: ProbabilityFlow, params, x, key, tol: float, batch: int) -> dict:
    """One tolerance: per-image log p and NFE (same draws as every rung), seconds after compiling."""
    cfg = dataclasses.replace(flow.config, rtol=tol, atol=tol)
    fn = jax.jit(lambda xb, k: flow.log_prob_and_nfe(params, xb, k, cfg))
    t0 = time.perf_counter()
    fn.lower(jnp.asarray(x[:batch]), key).compile()
    compile_s = time.perf_counter() - t0
    progress = Progress(-(-len(x) // batch), f"ODE tol {tol:g}", unit="batch")
    t0 = time.perf_counter()
    lp, nfe = per_image(fn, x, key, batch, progress)
    progress.close()
    return {
        "tol": tol,
        "lp": lp,
        "nfe": nfe,
        "seconds": time.perf_counter() - t0,
        "compile_seconds": compile_s,
    }


def probe_study(flow: ProbabilityFlow, params, x, key, tol: float, probes: int) -> dict:
    """Several probes per image, the dequantization fixed: probe variance vs between-image variance."""
    cfg = dataclasses.replace(flow.config, rtol=tol, atol=tol)
    fn = jax.jit(lambda xb, k, pk: flow.log_prob_and_nfe(params, xb, k, cfg, probe_key=pk)[0])
    v = np.stack(
        [np.asarray(fn(jnp.asarray(x), key, jax.random.fold_in(key, 10_000 + j))) for j in range(probes)], 1
    )
    v = bpd(-v)  # (images, probes) in bits/dim
    probe_var = float(np.mean(np.var(v, axis=1, ddof=1)))
    image_var = float(max(np.var(v.mean(1), ddof=1) - probe_var / probes, 0.0))
    return dict(
        probe_images=len(x),
        probes=probes,
        probe_sd_bpd=float(np.sqrt(probe_var)),
        image_sd_bpd=float(np.sqrt(image_var)),
        probe_share_of_variance=probe_var / (probe_var + image_var),
    )


def ladder(cfg: ODELadderConfig, fresh: bool) -> dict:
    """Every rung, the bound on the same images, the probe study (see the module docstring)."""
    train_set, test_set = load_image_splits(cfg.setup)
    run = trained_image_model(cfg.model, cfg.setup, train_set, test_set, fresh)
    flow = run.model.get(ProbabilityFlow)
    if flow is None:
        raise ConfigError(f"{cfg.model} has no probability-flow ODE (ProbabilityFlow capability)")
    x, key = test_set.images[: cfg.n_images], jax.random.key(cfg.seed + 31)
    rungs = [rung(flow, run.params, x, key, tol, cfg.batch) for tol in cfg.tolerances]
    bound = jax.jit(lambda xb, k: run.model.log_prob(run.params, xb, k))
    elbo = per_image(bound, x, jax.random.fold_in(key, 1), cfg.batch)
    rows = []
    for i, r in enumerate(rungs):
        v = bpd(-r["lp"])
        row = dict(
            tol=r["tol"],
            bpd=float(v.mean()),
            bpd_se=float(v.std(ddof=1) / np.sqrt(len(v))),
            nfe_mean=float(r["nfe"].mean()),
            nfe_median=float(np.median(r["nfe"])),
            nfe_max=float(r["nfe"].max()),
            seconds=r["seconds"],
            compile_seconds=r["compile_seconds"],
            n_images=len(v),
        )
        d = bpd(-elbo) - v
        row.update(bound_minus_ode=float(d.mean()), bound_minus_ode_se=float(d.std(ddof=1) / np.sqrt(len(d))))
        if i + 1 < len(rungs):
            d = bpd(-rungs[i + 1]["lp"]) - v
            row.update(
                change_to_next=float(d.mean()), change_to_next_se=float(d.std(ddof=1) / np.sqrt(len(d)))
            )
        rows.append(row)
    default, converged = choose_default(rows)
    probes = probe_study(flow, run.params, x[: cfg.probe_images], key, default["tol"], cfg.probes)
    ev = bpd(-elbo)
    return dict(
        rows=rows,
        default_tol=default["tol"],
        converged=converged,
        preset_tol=flow.config.rtol,
        probes=probes,
        run_dir=str(run.workdir),
        bound_bpd=float(ev.mean()),
        bound_bpd_se=float(ev.std(ddof=1) / np.sqrt(len(ev))),
    )


def choose_default(rows: list[dict]) -> tuple[dict, bool]:
    """(rung, converged): the loosest rung whose paired change to the next rung is below that change's
    own standard error; when none is, the tightest rung, not converged (extend the ladder)."""
    for r in rows:
        if "change_to_next" in r and abs(r["change_to_next"]) < r["change_to_next_se"]:
            return r, True
    return rows[-1], False


def run(cfg: ODELadderConfig, fresh: bool = False) -> dict:
    """The ladder, cached in the diffusion run's directory keyed by this config."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    train_set, _ = load_image_splits(cfg.setup)
    workdir = run_dir(cfg.setup.runs, image_spec(cfg.setup, cfg.model, train_set))
    workdir.mkdir(parents=True, exist_ok=True)
    result = cached(evaluation_cache(workdir, "ode_ladder", cfg), lambda: ladder(cfg, fresh))
    write_results(out, result["rows"], None, markdown(result, cfg))
    print((out / "results.md").read_text(), flush=True)
    return result


def markdown(result: dict, cfg: ODELadderConfig) -> str:
    """results.md: the ladder, the paired bound, the probe study and the recommended tolerance."""
    p = result["probes"]
    head = (
        f"The images study's {cfg.model} model: probability-flow ODE bits/dim on the same {cfg.n_images} "
        "Fashion-MNIST test images at each tolerance (rtol = atol), the same dequantization draw and "
        "Hutchinson "
        "probe per image at every rung. `change to next`: mean paired difference to the next (tighter) rung. "
        f"The bound on the same images: {result['bound_bpd']:.3f} ± {result['bound_bpd_se']:.3f} bits/dim; "
        f"`bound - ODE` paired.\nMachine: {machine_description()}.\n\n"
    )
    cols = [
        ("tol", "rtol = atol"),
        ("bpd", "ODE bits/dim"),
        ("bpd_se", "± se"),
        ("change_to_next", "change to next"),
        ("change_to_next_se", "± se"),
        ("bound_minus_ode", "bound - ODE"),
        ("bound_minus_ode_se", "± se "),
        ("nfe_mean", "NFE mean"),
        ("nfe_median", "NFE median"),
        ("nfe_max", "NFE max"),
        ("seconds", "seconds"),
        ("compile_seconds", "compile s"),
    ]
    table = markdown_table(
        [{**r, "tol": f"{r['tol']:g}"} for r in result["rows"]],
        cols,
        digits={
            "bpd": 4,
            "bpd_se": 4,
            "change_to_next": 4,
            "change_to_next_se": 4,
            "seconds": 0,
            "compile_seconds": 0,
            "nfe_mean": 1,
        },
    )
    tail = (
        f"\nProbes ({p['probes']} per image on {p['probe_images']} images, the dequantization fixed, at "
        "tolerance "
        f"{result['default_tol']:g}): probe sd {p['probe_sd_bpd']:.4f} bits/dim per image, between-image sd "
        f"{p['image_sd_bpd']:.4f}; the probe is {100 * p['probe_share_of_variance']:.1f}% of the per-image "
        f"variance behind the ± above.\n\n"
    )
    if result["converged"]:
        tail += (
            f"Recommended default: rtol = atol = {result['default_tol']:g}, the loosest rung whose paired "
            "change to the next is below that change's standard error. "
        )
    else:
        tail += (
            "No rung's paired change to the next is below its standard error: the ladder has not "
            f"converged; the tightest rung ({result['default_tol']:g}) is the best available. "
        )
    agrees = np.isclose(result["preset_tol"], result["default_tol"])
    tail += f"The images preset solves at {result['preset_tol']:g}: " + (
        "the ladder's choice.\n" if agrees else "NOT the ladder's choice; change it in the preset.\n"
    )
    return head + table + tail


def main(argv=None) -> None:
    """The command line (see the module docstring)."""
    run_cli("ode_ladder", PRESETS, run, argv, default_preset="cpu", doc=__doc__)


if __name__ == "__main__":
    main()
