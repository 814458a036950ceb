"""A latent-variable model's importance-sampling estimates of log p(x) against the number of samples k.

    curves = estimator_curves(model, params, x, ks=(1, 10, 100), repeats=2, chunk=100, seed=0)
    rows = summarize(curves, ks, num_dims=784)   # one row per (proposal, k), and the ELBO
    figure("estimators.png", rows, "VAE: IWAE vs prior sampling", key="nll")

Both proposals of the model's `LatentVariable` capability: the posterior q(z | x) (IWAE: tight after a
few hundred samples) and the prior p(z) (unbiased for p(x), but its log is far below for any affordable
k in high dimension), and the model's own ELBO beside them. Rows in nats and bits/dim.
"""

from __future__ import annotations

import jax
import numpy as np

from gen_jax.core import ConfigError, Model, nats_to_bits_per_dim
from gen_jax.core.capabilities import LatentVariable
from gen_jax.likelihood.importance import log_mean_exp_prefixes

PROPOSALS = {"posterior": "IWAE (q(z|x))", "prior": "prior sampling (p(z))"}


def estimator_curves(model: Model, params, x, ks, repeats: int = 1, chunk: int = 100, seed: int = 0) -> dict:
    """Per proposal, the estimates log p_hat_k(x) in nats, (repeats, images, len(ks)), and the ELBO
    (repeats, images)."""
    latent = model.get(LatentVariable)
    if latent is None:
        raise ConfigError(f"{model.name} has no LatentVariable capability: it needs a latent-variable model")
    log_weights = jax.jit(latent.log_weights, static_argnums=(3, 4, 5))
    elbo, key, k_max = jax.jit(model.log_prob), jax.random.key(seed), max(ks)
    out = {p: [] for p in (*PROPOSALS, "elbo")}
    for r in range(repeats):
        key_r = jax.random.fold_in(key, r)
        for proposal in PROPOSALS:
            lw = log_weights(params, x, key_r, k_max, proposal, chunk)  # (images, K)
            out[proposal].append(np.asarray(log_mean_exp_prefixes(lw, ks)))
        out["elbo"].append(np.asarray(elbo(params, x, key_r)))
    return {name: np.stack(v) for name, v in out.items()}


def _row(label: str, k: int, est: np.ndarray, num_dims: int) -> dict:
    """est: (repeats, images) log p estimates."""
    per_image = est.mean(0)
    nll, se = float(-per_image.mean()), float(per_image.std(ddof=1) / np.sqrt(len(per_image)))
    spread = float(est.std(0, ddof=1).mean()) if est.shape[0] > 1 else float("nan")
    bpd = lambda v: float(nats_to_bits_per_dim(v, num_dims))
    return dict(
        estimator=label,
        k=k,
        nll=nll,
        nll_se=se,
        bpd=bpd(nll),
        bpd_se=bpd(se),
        spread_bpd=bpd(spread),
        images=int(est.shape[1]),
    )


def summarize(curves: dict, ks, num_dims: int) -> list[dict]:
    """One row per (proposal, k) and one for the ELBO: mean NLL (nats) and bits/dim, their standard
    errors over images, and the spread over repeats (sd, mean over images)."""
    rows = [
        _row(label, k, curves[proposal][:, :, j], num_dims)
        for proposal, label in PROPOSALS.items()
        for j, k in enumerate(ks)
    ]
    return rows + [_row("ELBO (1 sample)", 1, curves["elbo"], num_dims)]


def figure(path, rows: list[dict], title: str, key: str = "bpd") -> None:
    """The estimate (`key`: "bpd" or "nll") and its spread over repeats against k, for both proposals,
    the ELBO as a line."""
    from gen_jax.plotting import curve_panels_figure

    pick = lambda label, k: (
        [r["k"] for r in rows if r["estimator"] == label],
        [r[k] for r in rows if r["estimator"] == label],
    )
    elbo = next(r for r in rows if r["estimator"].startswith("ELBO"))
    unit = "bits/dim" if key == "bpd" else "nats"
    panels = [
        dict(
            title="estimate (mean over images and repeats)",
            series={lb: pick(lb, key) for lb in PROPOSALS.values()},
            xlabel="k (log scale)",
            ylabel=f"{unit} (upper bound)",
            hline=(elbo[key], "ELBO"),
            xscale="log",
        )
    ]
    if all(r.get("spread_bpd") is not None and np.isfinite(r["spread_bpd"]) for r in rows):
        panels.append(
            dict(
                title="spread over repeats (sd, mean over images)",
                xlabel="k (log scale)",
                ylabel="bits/dim",
                series={lb: pick(lb, "spread_bpd") for lb in PROPOSALS.values()},
                yscale="log",
                xscale="log",
            )
        )
    curve_panels_figure(path, title, panels)
