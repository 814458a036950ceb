"""The 28x28 binary world: every answer to "how do we get p(x)?" on binarized Fashion-MNIST.

    python -m experiments.binary                        # make binary (about 30 min on 2 CPU cores)
    python -m experiments.binary models=[made,rbm] rbm.num_hidden=200

From the naive table (one probability per image: 2^784 parameters, and almost no test image was
ever seen) through the linear score (unnormalized as written; closed-form log Z makes it the
independent Bernoulli model), a sigmoid output trained by naive maximum likelihood (its total
"probability" over all 2^784 images estimated by importance sampling: far from 1), the normalized
models (mixture of Bernoullis, MADE, PixelCNN with Bernoulli outputs: exact; the Bernoulli VAE:
ELBO, IWAE against k, and the prior average that stays far below), to the RBM trained by persistent
contrastive divergence with log Z by AIS and reverse AIS, and a small RBM whose exact log Z checks
them. Binarized MNIST test is the out-of-distribution set (raw log p and the complexity-corrected
score). Writes results.json/.md, iwae.json, samples.png and iwae.png under `out`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.configs.binary import PRESETS, BinaryConfig
from gen_jax.core import ConfigError
from gen_jax.core.capabilities import LatentVariable
from gen_jax.data.images import load_images
from gen_jax.evaluation.cli import run_cli
from gen_jax.evaluation.config import jsonable
from gen_jax.evaluation.ood import auroc, complexity, png_bits
from gen_jax.evaluation.runs import RunSpec, cached, evaluation_cache, train_or_reuse
from gen_jax.evaluation.tables import machine_description, markdown_table, write_results
from gen_jax.likelihood.ais import log_mean_exp_se
from gen_jax.likelihood.importance import log_mean_exp_prefixes
from gen_jax.models import make_model
from gen_jax.models.discrete import linear_log_z
from gen_jax.models.rbm import (
    ais_log_z,
    base_rate_logits,
    exact_log_z,
    exact_samples,
    gibbs_chain,
    reverse_ais_log_z,
)
from gen_jax.nn.mlp import MLP
from gen_jax.plotting import curve_panels_figure, image_panels
from gen_jax.training import TrainConfig

D = 784
LN2 = math.log(2.0)
VECTOR, IMAGE01, IMAGE255 = "vector", "image01", "image255"
# label -> (registry name, input form, config field with its options)
MODELS = {
    "mixture": ("bernoulli_mixture", VECTOR, "mixture"),
    "made": ("ar_bernoulli", VECTOR, "made"),
    "pixelcnn": ("pixelcnn", IMAGE01, "pixelcnn"),
    "vae": ("vae_bin", IMAGE255, "vae"),
    "rbm": ("rbm", VECTOR, "rbm"),
    "rbm_small": ("rbm", VECTOR, "rbm"),
}
LITERATURE = "binarized MNIST (context only, the data differ): RBM + AIS ~86, NADE ~88.9, MADE ~86.6, PixelCNN 81.3, IWAE 82.9 nats"


# ----------------------------------------------------------------------------- data


def binarize(images: np.ndarray, cfg: BinaryConfig, seed_offset: int = 0) -> np.ndarray:
    """uint8 images (n, 28, 28, 1) -> float32 {0, 1} vectors (n, 784), by the config's fixed rule."""
    x = images.reshape(len(images), D).astype(np.float64) / 255.0
    if cfg.binarization == "stochastic":
        return (np.random.default_rng(cfg.seed + seed_offset).random(x.shape) < x).astype(np.float32)
    if cfg.binarization == "threshold":
        return (images.reshape(len(images), D) >= cfg.threshold).astype(np.float32)
    raise ConfigError(f"unknown binarization {cfg.binarization!r}; choose 'stochastic' or 'threshold'")


def load_binary(cfg: BinaryConfig) -> dict:
    """{"train", "test", "ood"}: binary vectors, each split binarized with its own fixed seed."""
    train = load_images(cfg.dataset, "train", data_dir=cfg.data_dir).shuffled(cfg.seed).take(cfg.n_train)
    test = load_images(cfg.dataset, "test", data_dir=cfg.data_dir).take(cfg.n_test)
    ood = load_images(cfg.ood_dataset, "test", data_dir=cfg.data_dir).take(cfg.n_test)
    print(
        f"data: {len(train)} train, {len(test)} test from {train.source}; {len(ood)} {cfg.ood_dataset}",
        flush=True,
    )
    return {
        "train": binarize(train.images, cfg, 0),
        "test": binarize(test.images, cfg, 1),
        "ood": binarize(ood.images, cfg, 2),
    }


def as_input(x: np.ndarray, form: str) -> np.ndarray:
    """Binary vectors in the form a model takes: vectors, {0,1} images, or {0,255} 8-bit images."""
    if form == VECTOR:
        return x
    img = x.reshape(len(x), 28, 28, 1).astype(np.uint8)
    return img if form == IMAGE01 else img * np.uint8(255)


def as_images(samples, form: str) -> np.ndarray:
    """Samples of any form -> float images in [0, 1] for the grids."""
    s = np.asarray(samples, np.float32).reshape(-1, 28, 28, 1)
    return s / 255.0 if form == IMAGE255 else s


# ----------------------------------------------------------------------------- the naive table and the linear score


def naive_table(data: dict) -> dict:
    """How many test images occur in the training set, and the add-one table's test NLL over all
    2^784 states: log p(x) = log(count(x) + 1) - log(N + 2^784)."""
    key = lambda x: [r.tobytes() for r in np.packbits(x.astype(np.uint8), axis=1)]
    counts: dict[bytes, int] = {}
    for k in key(data["train"]):
        counts[k] = counts.get(k, 0) + 1
    hits = np.array([counts.get(k, 0) for k in key(data["test"])])
    n = len(data["train"])
    log_norm = D * LN2 + math.log1p(n / 2.0**D)
    nll = log_norm - np.log(hits + 1.0)
    return dict(
        model="naive table (+1 smoothing)",
        kind="exact",
        estimator="counts over 2^784 states",
        nll=float(nll.mean()),
        nll_se=float(nll.std(ddof=1) / math.sqrt(len(nll))),
        params="2^784 ~ 1e236",
        test_seen=int((hits > 0).sum()),
        distinct_train=len(counts),
        train_s=0.0,
    )


def linear_rows(data: dict, key) -> tuple[list[dict], object, object]:
    """The linear score at its maximum-likelihood weights: raw (unnormalized) and with its
    closed-form log Z (= the independent Bernoulli model)."""
    model = make_model("linear_energy", D)
    params = model.init(key, data["train"])
    raw = np.asarray(model.log_prob(params, jnp.asarray(data["test"])), np.float64)
    log_z = float(linear_log_z(params))
    base = dict(model="linear score w.x + b", params=D + 1, train_s=0.0, log_z=None)
    return (
        [
            dict(base, kind="unnormalized", estimator="raw -w.x - b", **_mean_se(-raw)),
            dict(
                base,
                kind="exact",
                estimator="closed-form log Z",
                log_z=log_z,
                log_z_est="sum log(1 + e^w)",
                **_mean_se(log_z - raw),
            ),
        ],
        model,
        params,
    )


def _mean_se(nll) -> dict:
    nll = np.asarray(nll, np.float64)
    return dict(nll=float(nll.mean()), nll_se=float(nll.std(ddof=1) / math.sqrt(len(nll))))


# ----------------------------------------------------------------------------- a sigmoid is no distribution


def sigmoid_mass(data: dict, proposal, proposal_params, cfg: BinaryConfig) -> dict:
    """An MLP with a sigmoid output trained by naive maximum likelihood (maximize mean log s(x) on
    the training images), then its total mass sum_x s(x) over all 2^784 images by importance
    sampling from the fitted Bernoulli model q: log mean s(x) / q(x)."""
    net = MLP(tuple(cfg.sigmoid_hidden), 1, jax.nn.relu)
    x = jnp.asarray(data["train"])
    params = net.init(jax.random.key(cfg.seed), x[:1])["params"]
    opt = optax.adam(1e-3)
    log_s = lambda p, b: jax.nn.log_sigmoid(net.apply({"params": p}, 2.0 * b - 1.0)[..., 0])

    def step(carry, k):
        p, s = carry
        batch = x[jax.random.randint(k, (cfg.train.batch_size,), 0, x.shape[0])]
        g = jax.grad(lambda p: -jnp.mean(log_s(p, batch)))(p)
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    t0 = time.perf_counter()
    keys = jax.random.split(jax.random.key(cfg.seed + 1), cfg.sigmoid_steps)
    params, _ = jax.jit(lambda c: jax.lax.scan(step, c, keys))((params, opt.init(params)))[0]
    q = proposal.sample(proposal_params, jax.random.key(cfg.seed + 2), cfg.is_samples)
    log_w = np.concatenate(
        [
            np.asarray(log_s(params, c) - proposal.log_prob(proposal_params, c))
            for c in jnp.array_split(q, max(1, len(q) // 10_000))
        ]
    )
    log_mass, se, ess = log_mean_exp_se(log_w)
    test_s = np.asarray(log_s(params, jnp.asarray(data["test"])), np.float64)
    return dict(
        model="sigmoid output, naive MLE",
        kind="none",
        estimator="-log s(x) (no distribution)",
        params=int(sum(p.size for p in jax.tree_util.tree_leaves(params))),
        train_s=time.perf_counter() - t0,
        log_z=log_mass,
        log_z_se=se,
        log_z_est=f"IS from the Bernoulli model, {len(log_w)} samples, ESS {ess:.1f}",
        **_mean_se(-test_s),
    )


# ----------------------------------------------------------------------------- trained models


def spec(label: str, cfg: BinaryConfig) -> RunSpec:
    """The keyed run of one model of the study."""
    name, form, field = MODELS[label]
    options = dict(getattr(cfg, field))
    if name == "pixelcnn":
        options["output"] = "bernoulli"
    if label == "rbm_small":
        options["num_hidden"] = cfg.small_rbm_hidden
    shape = (D,) if form == VECTOR else (28, 28, 1)
    fields = {**dataclasses.asdict(cfg.train), **cfg.train_overrides.get(label, {}), "seed": cfg.seed}
    data = dict(
        dataset=f"{cfg.dataset}_binary",
        binarization=cfg.binarization,
        threshold=cfg.threshold,
        n_train=cfg.n_train,
        seed=cfg.seed,
    )
    return RunSpec(name, shape, jsonable(options), TrainConfig(**fields), data)


def log_probs(model, params, x: np.ndarray, batch: int = 500) -> np.ndarray:
    """model.log_prob over x in batches (one fixed key)."""
    f = jax.jit(model.log_prob)
    key = jax.random.key(0)
    return np.concatenate(
        [np.asarray(f(params, jnp.asarray(x[i : i + batch]), key)) for i in range(0, len(x), batch)]
    )


def rbm_log_z(run, data: dict, cfg: BinaryConfig) -> dict:
    """AIS and reverse AIS log Z of a trained RBM (and the exact one when it is small). Reverse AIS
    starts from exact samples when log Z is enumerable, else from 1000 Gibbs sweeps started at test
    images (approximate: its bound is then not guaranteed)."""
    params, base = run.params, base_rate_logits(data["train"])
    key = jax.random.key(cfg.seed + 7)
    fwd = ais_log_z(params, base, key, cfg.ais_chains, cfg.ais_temps)
    small = params["c"].shape[0] <= 24
    if small:
        start, how = exact_samples(params, jax.random.fold_in(key, 1), cfg.reverse_chains), "exact samples"
    else:
        x0 = jnp.asarray(data["test"][: cfg.reverse_chains])
        start, how = (
            gibbs_chain(params, x0, jax.random.fold_in(key, 1), 1000),
            "1000 Gibbs sweeps from test images",
        )
    rev = reverse_ais_log_z(params, base, start, jax.random.fold_in(key, 2), cfg.ais_temps)
    out = dict(ais=fwd.summary(), reverse=rev.summary(), reverse_start=how)
    out["exact"] = exact_log_z(params) if small else None
    return out


def model_rows(label: str, run, data: dict, cfg: BinaryConfig) -> tuple[list[dict], dict]:
    """The model's test rows (nats) and its per-image log p on test and OOD for the detection table."""
    name, form, _ = MODELS[label]
    test, ood = as_input(data["test"], form), as_input(data["ood"], form)
    lp_test, lp_ood = log_probs(run.model, run.params, test), log_probs(run.model, run.params, ood)
    base = dict(
        model=label,
        params=int(sum(p.size for p in jax.tree_util.tree_leaves(run.params))),
        train_s=run.train_seconds,
    )
    if name == "rbm":
        z = rbm_log_z(run, data, cfg)
        log_z, se = (z["exact"], 0.0) if z["exact"] is not None else (z["ais"]["log_z"], z["ais"]["log_z_se"])
        est = (
            "exact (2^H hidden states)"
            if z["exact"] is not None
            else f"AIS, {cfg.ais_chains} chains x {cfg.ais_temps} temps"
        )
        rows = [
            dict(
                base,
                kind="exact" if z["exact"] is not None else "estimate",
                estimator="log p~ - log Z",
                log_z=log_z,
                log_z_se=se,
                log_z_est=est,
                log_z_ais=z["ais"]["log_z"],
                log_z_ais_se=z["ais"]["log_z_se"],
                log_z_ais_bound=z["ais"]["log_z_bound"],
                log_z_rev=z["reverse"]["log_z"],
                log_z_rev_bound=z["reverse"]["log_z_bound"],
                reverse_start=z["reverse_start"],
                **_mean_se(log_z - lp_test),
            )
        ]
        return rows, dict(test=lp_test - log_z, ood=lp_ood - log_z)
    kind = str(run.model.kind)
    rows = [
        dict(
            base,
            kind=kind,
            estimator="ELBO (1 sample)"
            if name == "vae_bin"
            else "chain rule"
            if name != "bernoulli_mixture"
            else "sum over components",
            **_mean_se(-lp_test),
        )
    ]
    return rows, dict(test=lp_test, ood=lp_ood)


def iwae_curves(run, data: dict, cfg: BinaryConfig) -> list[dict]:
    """IWAE (posterior proposal) and the prior average against k on `iwae_images` test images."""
    latent = run.model.get(LatentVariable)
    x = jnp.asarray(as_input(data["test"][: cfg.iwae_images], IMAGE255))
    rows = []
    for proposal, label in (("posterior", "IWAE q(z|x)"), ("prior", "prior average p(z)")):
        lw = latent.log_weights(run.params, x, jax.random.key(cfg.seed + 3), max(cfg.iwae_ks), proposal, 100)
        est = np.asarray(log_mean_exp_prefixes(lw, cfg.iwae_ks), np.float64)  # (images, len(ks))
        for j, k in enumerate(cfg.iwae_ks):
            rows.append(dict(estimator=label, k=k, **_mean_se(-est[:, j])))
    return rows


# ----------------------------------------------------------------------------- the study


def detection(scores: dict, bits_test, bits_ood) -> dict:
    """AUROC (Fashion-MNIST test = positive) of log p and of the complexity-corrected score."""
    return dict(
        ood_nll=float(-np.mean(scores["ood"])),
        auroc_logp=auroc(scores["test"], scores["ood"]),
        auroc_complexity=auroc(complexity(scores["test"], bits_test), complexity(scores["ood"], bits_ood)),
    )


def evaluate_model(label: str, data: dict, cfg: BinaryConfig, bits: tuple, fresh: bool) -> dict:
    """Train (or reuse) one model and evaluate it: rows, detection, samples (cached per config)."""
    s = spec(label, cfg)
    form = MODELS[label][1]
    run = train_or_reuse(
        s,
        cfg.out,
        as_input(data["train"], form),
        eval_data=as_input(data["test"][:1000], form),
        fresh=fresh,
        desc=label,
    )
    ev_cfg = dict(
        n_test=cfg.n_test,
        ais=(cfg.ais_chains, cfg.ais_temps, cfg.reverse_chains),
        ks=cfg.iwae_ks,
        images=cfg.iwae_images,
        ood=cfg.ood_dataset,
    )

    def compute():
        rows, scores = model_rows(label, run, data, cfg)
        rows = [dict(r, **detection(scores, *bits)) for r in rows]
        samples = as_images(
            jax.jit(run.model.sample, static_argnums=2)(
                run.params, jax.random.key(cfg.seed + 5), cfg.n_samples
            ),
            form,
        )
        iwae = iwae_curves(run, data, cfg) if run.model.get(LatentVariable) else []
        return dict(rows=rows, samples=samples.tolist(), iwae=iwae)

    return cached(evaluation_cache(run.workdir, "binary", ev_cfg), compute)


def write(out: Path, rows: list[dict], iwae: list[dict], panels, table: dict) -> None:
    """results.md/.json, iwae.md/.json and the figures."""
    cols = [
        ("model", "model"),
        ("kind", "kind"),
        ("estimator", "estimator"),
        ("nll", "test NLL (nats)"),
        ("nll_se", "± se"),
        ("bpd", "bits/dim"),
        ("log_z", "log Z"),
        ("log_z_se", "± se"),
        ("log_z_est", "log Z by"),
        ("params", "params"),
        ("train_s", "train s"),
        ("ood_nll", "MNIST NLL"),
        ("auroc_logp", "AUROC log p"),
        ("auroc_complexity", "AUROC complexity"),
    ]
    for r in rows:
        r["bpd"] = r["nll"] / (D * LN2)
    head = (
        f"Binarized Fashion-MNIST ({table['binarization']}), {table['n_test']} test images; out-of-distribution: "
        f"binarized MNIST test. Naive table: {table['test_seen']} of {table['n_test']} test images occur in the training "
        f"set ({table['distinct_train']} distinct training images of {table['n_train']}).\n{LITERATURE}.\n"
        f"Machine: {machine_description()}.\n\n"
    )
    rbm = [r for r in rows if r.get("log_z_ais") is not None]
    rbm_cols = [
        ("model", "model"),
        ("log_z", "log Z used"),
        ("log_z_ais", "AIS"),
        ("log_z_ais_se", "± se"),
        ("log_z_ais_bound", "AIS mean log w (below)"),
        ("log_z_rev", "reverse AIS"),
        ("log_z_rev_bound", "reverse -mean log w (above)"),
        ("reverse_start", "reverse from"),
    ]
    md = (
        head
        + markdown_table(rows, cols, {"params": 0, "train_s": 0})
        + "\n## RBM log Z\n\n"
        + markdown_table(rbm, rbm_cols)
    )
    if iwae:
        md += (
            "\n## VAE: IWAE against the prior average (nats, first images of the test set)\n\n"
            + markdown_table(
                iwae, [("estimator", "estimator"), ("k", "k"), ("nll", "NLL estimate"), ("nll_se", "± se")]
            )
        )
        curve_panels_figure(
            out / "iwae.png",
            "Bernoulli VAE: estimates of -log p(x) against k",
            [
                dict(
                    title="NLL estimate (nats)",
                    xlabel="k (log scale)",
                    ylabel="nats",
                    xscale="log",
                    series={
                        lb: (
                            [r["k"] for r in iwae if r["estimator"] == lb],
                            [r["nll"] for r in iwae if r["estimator"] == lb],
                        )
                        for lb in dict.fromkeys(r["estimator"] for r in iwae)
                    },
                )
            ],
        )
    write_results(out, rows, None, md)
    write_results(
        out,
        iwae,
        None,
        markdown_table(iwae, [("estimator", "estimator"), ("k", "k"), ("nll", "NLL"), ("nll_se", "± se")]),
        name="iwae",
    )
    image_panels(out / "samples.png", panels)


def run(cfg: BinaryConfig, fresh: bool = False) -> list[dict]:
    """The study (see the module docstring)."""
    unknown = set(cfg.models) - set(MODELS)
    if unknown:
        raise ConfigError(f"unknown models {sorted(unknown)}; choose from {', '.join(MODELS)}")
    out = Path(cfg.out)
    data = load_binary(cfg)
    table = naive_table(data)
    lin_rows, lin_model, lin_params = linear_rows(data, jax.random.key(cfg.seed))
    rows = [
        table,
        *lin_rows,
        sigmoid_mass(data, make_model("bernoulli", D), {"logits": lin_params["w"]}, cfg),
    ]
    bits = tuple(png_bits(as_input(data[s], IMAGE255)) for s in ("test", "ood"))
    lp_lin = {
        s: np.asarray(lin_model.log_prob(lin_params, jnp.asarray(data[s]))) - float(linear_log_z(lin_params))
        for s in ("test", "ood")
    }
    rows[1:3] = [dict(r, **detection(lp_lin, *bits)) for r in rows[1:3]]
    panels, iwae = (
        [
            (
                "Bernoulli",
                np.asarray(lin_model.sample(lin_params, jax.random.key(1), cfg.n_samples)).reshape(
                    -1, 28, 28, 1
                ),
            )
        ],
        [],
    )
    for label in cfg.models:
        ev = evaluate_model(label, data, cfg, bits, fresh)
        rows += ev["rows"]
        iwae += ev["iwae"]
        panels.append((label, np.asarray(ev["samples"], np.float32)))
    write(
        out,
        rows,
        iwae,
        panels,
        dict(table, binarization=cfg.binarization, n_test=len(data["test"]), n_train=len(data["train"])),
    )
    print((out / "results.md").read_text(), flush=True)
    return rows


def main(argv=None) -> None:
    """The command line (see the module docstring)."""
    run_cli("binary", PRESETS, run, argv, default_preset="cpu", doc=__doc__)


if __name__ == "__main__":
    main()
