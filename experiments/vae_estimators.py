"""IWAE vs prior sampling: estimates of log p(x) from a trained VAE against the number of samples k.

    python -m experiments.vae_estimators                 # make vae-estimators (the images study's VAE)
    python -m experiments.vae_estimators ks=[1,10,100] images=32

For a few test images and several independent repeats, both importance-sampling estimators of the
model's `LatentVariable` capability: from the posterior q(z | x) (IWAE: tight after a few hundred
samples) and from the prior p(z) (unbiased for p(x) but, in 784 dimensions, its log is far below for
any affordable k), beside the ELBO. Writes estimators.json, estimators.md and estimators.png.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from experiments.configs.vae_estimators import PRESETS, EstimatorStudyConfig
from gen_jax.core import ConfigError, nats_to_bits_per_dim
from gen_jax.core.capabilities import LatentVariable
from gen_jax.evaluation.cli import run_cli
from gen_jax.evaluation.images import D, load_image_splits, trained_image_model
from gen_jax.evaluation.tables import machine_description, markdown_table, write_results
from gen_jax.likelihood.importance import log_mean_exp_prefixes
from gen_jax.plotting import curve_panels_figure

PROPOSALS = {"posterior": "IWAE (q(z|x))", "prior": "prior sampling (p(z))"}


def estimator_curves(model, params, x: np.ndarray, cfg: EstimatorStudyConfig) -> dict:
    """Per proposal, the estimates log p_hat_k(x) in nats, (repeats, images, len(ks)), and the ELBO
    (repeats, images), from the model's `LatentVariable` log weights."""
    latent = model.get(LatentVariable)
    if latent is None:
        raise ConfigError(
            f"{model.name} has no LatentVariable capability: this study needs a latent-variable model"
        )
    log_weights = jax.jit(latent.log_weights, static_argnums=(3, 4, 5))
    elbo, key, k_max = jax.jit(model.log_prob), jax.random.key(cfg.seed), max(cfg.ks)
    out = {p: [] for p in (*PROPOSALS, "elbo")}
    for r in range(cfg.repeats):
        key_r = jax.random.fold_in(key, r)
        for proposal in PROPOSALS:
            lw = log_weights(params, x, key_r, k_max, proposal, cfg.chunk_size)  # (images, K)
            out[proposal].append(np.asarray(log_mean_exp_prefixes(lw, cfg.ks)))
        out["elbo"].append(np.asarray(elbo(params, x, key_r)))
    return {name: np.stack(v) for name, v in out.items()}


def summarize(curves: dict, cfg: EstimatorStudyConfig) -> list[dict]:
    """One row per (proposal, k): mean bits/dim, its standard error over images, and the spread."""
    bpd = lambda nats: float(nats_to_bits_per_dim(nats, D))
    rows = []
    for proposal, label in PROPOSALS.items():
        est = curves[proposal]  # (R, B, K)
        per_image = est.mean(0)
        for j, k in enumerate(cfg.ks):
            rows.append(
                dict(
                    estimator=label,
                    k=k,
                    bpd=bpd(-per_image[:, j].mean()),
                    bpd_se=bpd(per_image[:, j].std(ddof=1) / np.sqrt(len(per_image))),
                    spread_bpd=bpd(est[:, :, j].std(0, ddof=1).mean()),
                )
            )
    e = curves["elbo"]
    rows.append(
        dict(
            estimator="ELBO (1 sample)",
            k=1,
            bpd=bpd(-e.mean()),
            bpd_se=bpd(e.mean(0).std(ddof=1) / np.sqrt(e.shape[1])),
            spread_bpd=bpd(e.std(0, ddof=1).mean()),
        )
    )
    return rows


def figure(path: Path, rows: list[dict], title: str) -> None:
    """The estimate and its spread against k, for both proposals."""
    pick = lambda label, key: (
        [r["k"] for r in rows if r["estimator"] == label],
        [r[key] for r in rows if r["estimator"] == label],
    )
    elbo = next(r for r in rows if r["estimator"].startswith("ELBO"))
    curve_panels_figure(
        path,
        title,
        [
            dict(
                title="estimate (mean over images and repeats)",
                series={lb: pick(lb, "bpd") for lb in PROPOSALS.values()},
                xlabel="k (log scale)",
                ylabel="bits/dim (upper bound)",
                hline=(elbo["bpd"], "ELBO"),
                xscale="log",
            ),
            dict(
                title="spread over repeats (sd, mean over images)",
                xlabel="k (log scale)",
                ylabel="bits/dim",
                series={lb: pick(lb, "spread_bpd") for lb in PROPOSALS.values()},
                yscale="log",
                xscale="log",
            ),
        ],
    )


def run(cfg: EstimatorStudyConfig, fresh: bool = False) -> list[dict]:
    """The study (see the module docstring)."""
    out = Path(cfg.out)
    train_set, test_set = load_image_splits(cfg.setup)
    r = trained_image_model(cfg.model, cfg.setup, train_set, test_set, fresh)
    rows = summarize(estimator_curves(r.model, r.params, test_set.images[: cfg.images], cfg), cfg)
    head = (
        f"{cfg.model} on {cfg.images} {cfg.setup.dataset} test images, {cfg.repeats} repeats; bits/dim of "
        "each estimate (an upper bound on the true bits/dim in expectation); se over images; spread = sd "
        "over "
        f"repeats.\nMachine: {machine_description()}.\n\n"
    )
    cols = [
        ("estimator", "estimator"),
        ("k", "k"),
        ("bpd", "bits/dim"),
        ("bpd_se", "± se"),
        ("spread_bpd", "spread"),
    ]
    write_results(out, rows, None, head + markdown_table(rows, cols, {"spread_bpd": 4}), name="estimators")
    figure(out / "estimators.png", rows, f"{cfg.model}: IWAE vs prior sampling against k")
    print((out / "estimators.md").read_text(), flush=True)
    return rows


def main(argv=None) -> None:
    """The command line (see the module docstring)."""
    run_cli("vae_estimators", PRESETS, run, argv, default_preset="cpu", doc=__doc__)


if __name__ == "__main__":
    main()
