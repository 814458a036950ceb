"""Two demonstrations of why a normalizer matters (part of `make contrast`).

    python -m experiments.demos                    # results/contrast/demos
    python -m experiments.demos --preset smoke

(1) Maximum likelihood without a normalizer: an energy network trained to maximise raw log p~ of the
data runs away (its raw objective falls without end) while its true NLL (raw + grid log Z) gets
worse; the same network trained by score matching converges. (2) A sigmoid output layer trained the
same way is bounded, yet its integral over the box is far from 1: not a density.
Writes demos.json, demos.md and two figures.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from experiments.configs.contrast import DEMO_PRESETS, DemosConfig
from gen_jax.evaluation.cli import run_cli
from gen_jax.evaluation.config import config_hash
from gen_jax.evaluation.runs import cached
from gen_jax.evaluation.tables import markdown_table
from gen_jax.evaluation.vector import load_vector_data
from gen_jax.likelihood.grid import evaluate_on_grid, log_integrate_2d, widened
from gen_jax.models import make_model
from gen_jax.plotting import curve_panels_figure, density_and_samples_figure
from gen_jax.training import train


def true_nll_tracker(model, test, box, grid_n: int):
    """eval_fn for the training loop: raw -log p~ on the test set, grid log Z, and their sum."""
    test = jnp.asarray(test)
    raw = jax.jit(lambda params: -jnp.mean(model.log_prob(params, test)))
    log_p = jax.jit(model.log_prob)

    def eval_fn(params) -> dict:
        log_z = log_integrate_2d(lambda x: log_p(params, x), box, grid_n)
        r = float(raw(params))
        return {"raw_nll": r, "log_z_grid": log_z, "true_nll": r + log_z}

    return eval_fn


def compute(cfg: DemosConfig) -> dict:
    """Train the three networks and measure (see the module docstring)."""
    data = load_vector_data(cfg.dataset, cfg.n_train, cfg.n_test, cfg.seed)
    box = widened(data.box, cfg.grid_widen)
    tcfg = dataclasses.replace(cfg.train, seed=cfg.seed)
    runs = {}
    for name in (cfg.naive_model, cfg.score_model):
        model = make_model(name, 2, **cfg.network)
        t0 = time.perf_counter()
        res = train(model, data.train, tcfg, eval_fn=true_nll_tracker(model, data.test, box, cfg.grid_n))
        evals = [r for r in res.history if "true_nll" in r]
        runs[name] = dict(
            model=name,
            objective=model.info["objective"],
            steps=[r["step"] for r in evals],
            raw_nll=[r["raw_nll"] for r in evals],
            true_nll=[r["true_nll"] for r in evals],
            log_z_grid=[r["log_z_grid"] for r in evals],
            train_seconds=time.perf_counter() - t0,
        )
    sig = make_model(cfg.naive_model, 2, output="sigmoid", **cfg.network).replace(name="sigmoid_net")
    res = train(sig, data.train, tcfg)
    lp = jax.jit(lambda x: sig.log_prob(res.params, x))
    sigmoid = dict(
        model="sigmoid_net",
        objective="naive_mle, sigmoid output",
        grid_integral=float(np.exp(log_integrate_2d(lp, data.box, cfg.grid_n))),
        apparent_nll=float(-np.mean(np.asarray(lp(jnp.asarray(data.test))))),
        log_density=evaluate_on_grid(lp, data.box, cfg.figure_grid_n).tolist(),
    )
    truth = evaluate_on_grid(data.true_log_prob, data.box, cfg.figure_grid_n).tolist()
    return dict(
        dataset=data.name,
        true_entropy=data.true_entropy,
        box=list(data.box),
        log_z_box=list(box),
        mle=runs,
        sigmoid=sigmoid,
        truth_log_density=truth,
    )


def figures(demos: dict, out: Path) -> None:
    """naive_mle_diverges.png and sigmoid_not_a_density.png."""
    runs = demos["mle"]
    series = lambda key: {f"{r['model']} ({r['objective']})": (r["steps"], r[key]) for r in runs.values()}
    curve_panels_figure(
        out / "naive_mle_diverges.png",
        f"{demos['dataset']}: the same energy network, two objectives",
        [
            dict(
                title="the raw objective: -mean log p~(x) on test",
                series=series("raw_nll"),
                xlabel="step",
                ylabel="nats (no normalizer)",
                yscale="symlog",
            ),
            dict(
                title="the true NLL: -mean log p~(x) + log Z (grid)",
                series=series("true_nll"),
                xlabel="step",
                ylabel="nats",
                hline=(demos["true_entropy"], "true entropy"),
            ),
        ],
    )
    s = demos["sigmoid"]
    density_and_samples_figure(
        out / "sigmoid_not_a_density.png",
        f"a sigmoid output trained to be large on data: integral over the box = {s['grid_integral']:.1f}",
        tuple(demos["box"]),
        [
            dict(label="truth (integral 1)", log_density=np.asarray(demos["truth_log_density"])),
            dict(
                label=f"sigmoid(-f(x))\nintegral {s['grid_integral']:.1f}",
                log_density=np.asarray(s["log_density"]),
            ),
        ],
    )


def rows(demos: dict) -> list[dict]:
    """The row of numbers of each demonstration."""
    out = [
        dict(
            demo="max likelihood without a normalizer",
            model=r["model"],
            objective=r["objective"],
            raw_start=r["raw_nll"][0],
            raw_end=r["raw_nll"][-1],
            true_start=r["true_nll"][0],
            true_best=min(r["true_nll"]),
            true_end=r["true_nll"][-1],
        )
        for r in demos["mle"].values()
    ]
    s = demos["sigmoid"]
    out.append(
        dict(
            demo="a sigmoid output is not a density",
            model=s["model"],
            objective=s["objective"],
            raw_end=s["apparent_nll"],
            integral=s["grid_integral"],
        )
    )
    return out


COLUMNS = [
    ("demo", "demonstration"),
    ("model", "model"),
    ("objective", "objective"),
    ("raw_start", "raw start"),
    ("raw_end", "raw end"),
    ("true_start", "true NLL start"),
    ("true_best", "true NLL best"),
    ("true_end", "true NLL end"),
    ("integral", "integral"),
]


def run(cfg: DemosConfig, fresh: bool = False) -> dict:
    """Compute (or reuse, for the same config) the demonstrations; write demos.md and the figures."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"demos-{config_hash(cfg)}.json"
    if fresh:
        path.unlink(missing_ok=True)
    demos = cached(path, lambda: compute(cfg))
    figures(demos, out)
    head = (
        f"On {demos['dataset']} (true entropy {demos['true_entropy']:.3f} nats). Raw = -mean log p~ on test "
        "(what naive maximum likelihood minimizes); true = raw + grid log Z. For the sigmoid, raw is the "
        "'NLL' it would report and integral is its integral over the plotting box.\n\n"
    )
    (out / "demos.md").write_text(head + markdown_table(rows(demos), COLUMNS))
    print((out / "demos.md").read_text(), flush=True)
    return demos


def main(argv=None) -> None:
    """The command line (see the module docstring)."""
    run_cli("demos", DEMO_PRESETS, run, argv, default_preset="default", doc=__doc__)


if __name__ == "__main__":
    main()
