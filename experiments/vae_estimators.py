"""The VAE's two importance-sampling estimates of log p(x) against k, on the same test images.

    python -m experiments.vae_estimators --run results/images/runs/vae         # make vae-estimators

For each of `images` test images and each of `repeats` independent repeats, K = max(ks) log
weights are drawn per proposal, q(z | x) (IWAE) and p(z) (the naive estimate that averages
p(x | z) over the prior), in memory-bounded chunks; the estimate at every k <= K is read from the
running log-sum-exp of the same draws. Both are stochastic lower bounds of log p(x) (so their
bits/dim are upper bounds) that tighten as k grows: the table and figure show how fast (bias:
the mean over images and repeats) and how noisily (spread: the standard deviation over repeats,
averaged over images), beside the ELBO. Writes estimators.json / .md / .png in the run directory.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import jax
import numpy as np

from experiments.common import build_model, machine_description, markdown_table
from experiments.configs.images import get_config
from gen_jax.data.images import IMAGE_SHAPE, load_images
from gen_jax.likelihood.importance import log_mean_exp_prefixes
from gen_jax.likelihood.units import nats_to_bits_per_dim
from gen_jax.models import Model
from gen_jax.plotting import curve_panels_figure
from gen_jax.training import TrainConfig, restore_params

D = int(np.prod(IMAGE_SHAPE))
PROPOSALS = {"posterior": "IWAE (q(z|x))", "prior": "prior sampling (p(z))"}


@dataclasses.dataclass(frozen=True)
class EstimatorStudy:
    ks: tuple[int, ...] = (1, 10, 100, 1000, 5000)
    images: int = 16
    repeats: int = 4
    chunk_size: int = 100
    seed: int = 0


def estimator_curves(model: Model, params, x: np.ndarray, study: EstimatorStudy) -> dict:
    """Per proposal, the estimates log p_hat_k(x) in nats, shape (repeats, images, len(ks)), and the
    ELBO (repeats, images). Uses the model's `parts["log_weights"]` (any `latent_variable_model`)."""
    log_weights = jax.jit(model.parts["log_weights"], static_argnums=(3, 4, 5))
    elbo = jax.jit(model.log_prob)
    key = jax.random.key(study.seed)
    k_max = max(study.ks)
    out = {p: [] for p in PROPOSALS}
    out["elbo"] = []
    for r in range(study.repeats):
        key_r = jax.random.fold_in(key, r)
        for proposal in PROPOSALS:
            lw = log_weights(params, x, key_r, k_max, proposal, study.chunk_size)  # (images, K)
            out[proposal].append(np.asarray(log_mean_exp_prefixes(lw, study.ks)))
        out["elbo"].append(np.asarray(elbo(params, x, key_r)))
    return {name: np.stack(v) for name, v in out.items()}


def summarize(curves: dict, study: EstimatorStudy) -> list[dict]:
    """One row per (proposal, k): mean bits/dim, its standard error over images, and the spread."""
    rows = []
    for proposal, label in PROPOSALS.items():
        est = curves[proposal]  # (R, B, K)
        per_image = est.mean(0)  # (B, K)
        for j, k in enumerate(study.ks):
            rows.append(
                dict(
                    estimator=label,
                    k=k,
                    bpd=float(nats_to_bits_per_dim(-per_image[:, j].mean(), D)),
                    bpd_se=float(
                        nats_to_bits_per_dim(per_image[:, j].std(ddof=1) / np.sqrt(len(per_image)), D)
                    ),
                    spread_bpd=float(nats_to_bits_per_dim(est[:, :, j].std(0, ddof=1).mean(), D)),
                )
            )
    elbo = curves["elbo"]
    rows.append(
        dict(
            estimator="ELBO (1 sample)",
            k=1,
            bpd=float(nats_to_bits_per_dim(-elbo.mean(), D)),
            bpd_se=float(nats_to_bits_per_dim(elbo.mean(0).std(ddof=1) / np.sqrt(elbo.shape[1]), D)),
            spread_bpd=float(nats_to_bits_per_dim(elbo.std(0, ddof=1).mean(), D)),
        )
    )
    return rows


def figure(path: Path, rows: list[dict], title: str) -> None:
    series_bias, series_spread = {}, {}
    for label in PROPOSALS.values():
        rs = [r for r in rows if r["estimator"] == label]
        series_bias[label] = ([r["k"] for r in rs], [r["bpd"] for r in rs])
        series_spread[label] = ([r["k"] for r in rs], [r["spread_bpd"] for r in rs])
    elbo = next(r for r in rows if r["estimator"].startswith("ELBO"))
    curve_panels_figure(
        path,
        title,
        [
            dict(
                title="estimate (mean over images and repeats)",
                series=series_bias,
                xlabel="k (log scale)",
                ylabel="bits/dim (upper bound)",
                hline=(elbo["bpd"], "ELBO"),
                xscale="log",
            ),
            dict(
                title="spread over repeats (sd, mean over images)",
                series=series_spread,
                xlabel="k (log scale)",
                ylabel="bits/dim",
                yscale="log",
                xscale="log",
            ),
        ],
    )


def load_run(workdir: Path, data_dir: str | None = None) -> tuple[Model, object, str]:
    """Model, evaluation parameters and dataset name of a run written by experiments.images."""
    meta = json.loads((workdir / "model_config.json").read_text())
    model = build_model(meta["model"], IMAGE_SHAPE, {meta["model"]: meta["kwargs"]})
    tcfg = TrainConfig(**json.loads((workdir / "train_config.json").read_text()))
    example = load_images(meta["dataset"], "train", data_dir=data_dir).images[: tcfg.batch_size]
    return model, restore_params(model, workdir, example), meta["dataset"]


def run(workdir: Path, study: EstimatorStudy, data_dir: str | None = None) -> list[dict]:
    model, params, dataset = load_run(workdir, data_dir)
    if "log_weights" not in model.parts:
        raise ValueError(f"{workdir} holds a {model.name!r} model: this study needs a latent-variable model")
    x = load_images(dataset, "test", data_dir=data_dir).images[: study.images]
    rows = summarize(estimator_curves(model, params, x, study), study)
    (workdir / "estimators.json").write_text(
        json.dumps(dict(study=dataclasses.asdict(study), rows=rows), indent=1)
    )
    head = (
        f"{model.name} on {study.images} {dataset} test images, {study.repeats} repeats; bits/dim of each "
        f"estimate (an upper bound on the true bits/dim); se over images; spread = sd over repeats.\n"
        f"Machine: {machine_description()}.\n\n"
    )
    cols = [
        ("estimator", "estimator"),
        ("k", "k"),
        ("bpd", "bits/dim"),
        ("bpd_se", "± se"),
        ("spread_bpd", "spread"),
    ]
    (workdir / "estimators.md").write_text(
        head + markdown_table(rows, cols, digits={"bpd": 3, "bpd_se": 3, "spread_bpd": 4})
    )
    figure(workdir / "estimators.png", rows, f"{model.name}: IWAE vs prior sampling against k")
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--run", default="results/images/runs/vae", help="a VAE run directory of experiments.images"
    )
    p.add_argument("--images", type=int, default=EstimatorStudy.images)
    p.add_argument("--repeats", type=int, default=EstimatorStudy.repeats)
    p.add_argument("--ks", default=",".join(map(str, EstimatorStudy.ks)))
    p.add_argument("--data-dir", default=get_config("cpu").data_dir)
    a = p.parse_args(argv)
    study = EstimatorStudy(ks=tuple(int(k) for k in a.ks.split(",")), images=a.images, repeats=a.repeats)
    run(Path(a.run), study, a.data_dir)
    print((Path(a.run) / "estimators.md").read_text())


if __name__ == "__main__":
    main()
