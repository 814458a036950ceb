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

from experiments.configs.vae_estimators import PRESETS, EstimatorStudyConfig
from gen_jax.evaluation.cli import run_cli
from gen_jax.evaluation.images import D, load_image_splits, trained_image_model
from gen_jax.evaluation.latent import estimator_curves, figure, summarize
from gen_jax.evaluation.tables import machine_description, markdown_table, write_results


def run(cfg: EstimatorStudyConfig, fresh: bool = False) -> list[dict]:
    """The study (see the module docstring)."""
    out = Path(cfg.out)
    train_set, test_set = load_image_splits(cfg.setup)
    r = trained_image_model(cfg.model, cfg.setup, train_set, test_set, fresh)
    x = test_set.images[: cfg.images]
    curves = estimator_curves(r.model, r.params, x, cfg.ks, cfg.repeats, cfg.chunk_size, cfg.seed)
    rows = summarize(curves, cfg.ks, D)
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
