"""The 28x28 binary world: every answer to "how do we get p(x)?" on binarized Fashion-MNIST.

    python -m experiments.binary                        # make binary (about 40 min on 2 CPU cores)
    python -m experiments.binary models=[ar_bernoulli,rbm] model_options.rbm.num_hidden=200

From the naive table (one probability per image: 2^784 parameters, and almost no test image was ever
seen) through the linear score (unnormalized as written; its closed-form log Z makes it the
independent Bernoulli model), a sigmoid output trained by naive maximum likelihood (its total
"probability" over all 2^784 images by importance sampling: far from 1), the normalized models
(mixture of Bernoullis, MADE, PixelCNN with Bernoulli outputs: exact; the Bernoulli VAE: ELBO, IWAE
against k, and the prior average that stays far below), to the RBM trained by persistent contrastive
divergence, its log Z by AIS from the base rate and reverse AIS, and a small RBM whose exact log Z
checks them. Binarized MNIST test is the out-of-distribution set (raw log p and the
complexity-corrected score). Writes results.json/.md, iwae.json/.md, mass.json, samples.png, iwae.png.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np

from experiments.configs.binary import PRESETS, BinaryConfig
from gen_jax.core import Kind, nats_to_bits_per_dim, num_params
from gen_jax.core.capabilities import LatentVariable
from gen_jax.data.binary import as_form, load_binary_splits, to_unit_images
from gen_jax.evaluation.binary import naive_table, sigmoid_mass
from gen_jax.evaluation.cli import run_cli
from gen_jax.evaluation.config import jsonable, resolve_model_options
from gen_jax.evaluation.latent import estimator_curves, figure, summarize
from gen_jax.evaluation.nll import evaluate_nll
from gen_jax.evaluation.notes import exact_log_z_checks
from gen_jax.evaluation.ood import auroc, complexity, png_bits
from gen_jax.evaluation.rows import evaluate_view
from gen_jax.evaluation.runs import RunSpec, cached, evaluation_cache, train_or_reuse
from gen_jax.evaluation.tables import machine_description, markdown_table, write_results
from gen_jax.plotting import image_panels
from gen_jax.training import TrainConfig

D = 784
LITERATURE = (
    "Binarized MNIST in the literature (context only: the data differ): RBM + AIS ~86, NADE ~88.9, "
    "MADE ~86.6, PixelCNN 81.3, IWAE 82.9 nats"
)
COLUMNS = [
    ("model", "model"),
    ("kind", "kind"),
    ("objective", "trained by"),
    ("how", "log p by"),
    ("test_nll", "test NLL (nats)"),
    ("test_nll_se", "± se"),
    ("test_bpd", "bits/dim"),
    ("log_z", "log Z"),
    ("log_z_se", "± se "),
    ("params", "params"),
    ("train_seconds", "train s"),
    ("ood_nll", "MNIST NLL"),
    ("auroc_logp", "AUROC log p"),
    ("auroc_complexity", "AUROC complexity"),
]
LOG_Z_COLUMNS = [
    ("model", "model"),
    ("log_z_grid", "exact"),
    ("log_z_ais", "AIS"),
    ("log_z_ais_se", "± se"),
    ("log_z_ais_ess", "ESS"),
    ("log_z_ais_bound", "AIS mean log w (below)"),
    ("log_z_reverse", "reverse AIS"),
    ("log_z_reverse_bound", "reverse mean (above)"),
    ("log_z_reverse_start", "reverse from"),
    ("log_z_ais_moves", "AIS moves"),
]


def load(cfg: BinaryConfig) -> dict:
    """{"train", "test", "ood"}: binary vectors, each split binarized with its own fixed seed."""
    fields = ("dataset", "ood_dataset", "data_dir", "binarization", "threshold", "seed", "n_train", "n_test")
    return load_binary_splits(*(getattr(cfg, f) for f in fields))


def specs(cfg: BinaryConfig) -> dict[str, RunSpec]:
    """Every run of the study by its row label: the models, and the small check variants."""
    data = dict(dataset=f"{cfg.dataset}_binary", binarization=cfg.binarization, n_train=cfg.n_train)
    data.update(threshold=cfg.threshold, seed=cfg.seed)
    variants = {m: (m, cfg.model_options[m]) for m in cfg.models}
    for label, check in cfg.check_options.items():  # label: "<model>/<variant>"
        m = label.split("/")[0]
        variants[label] = (m, resolve_model_options([m], {m: {**cfg.model_options.get(m, {}), **check}})[m])
    out = {}
    for label, (name, options) in variants.items():
        fields = {**dataclasses.asdict(cfg.train), **cfg.train_overrides.get(name, {}), "seed": cfg.seed}
        shape = (D,) if cfg.forms.get(name, "vector") == "vector" else (28, 28, 1)
        out[label] = RunSpec(name, shape, jsonable(options), TrainConfig(**fields), data)
    return out


def evaluate(label: str, run, data: dict, cfg: BinaryConfig, bits: tuple) -> dict:
    """A trained model's rows (raw first when it is unnormalized), samples and IWAE curves."""
    form = cfg.forms.get(run.spec.model, "vector")
    test, ood = as_form(data["test"], form), as_form(data["ood"], form)
    key = jax.random.key(cfg.seed + 11)
    base = dict(params=num_params(run.params), train_seconds=run.train_seconds)
    base["objective"] = run.model.info.get("objective", "max_likelihood")
    rows = []
    if run.model.kind == Kind.UNNORMALIZED:
        nll, se, _ = evaluate_nll(run.model, run.params, test, key)
        rows.append(
            dict(base, model=f"{label} (raw)", kind="unnormalized", how="log p~, no log Z", test_nll=nll)
        )
        rows[-1]["test_nll_se"] = se
    row, per, view = evaluate_view(
        label, run.model, run.params, test, key, reference=data["train"], normalize_cfg=cfg.normalize
    )
    _, _, per_ood = evaluate_nll(view, run.params, ood, key)
    how = f"log p~ - log Z ({row['log_z_method']})" if row.get("log_z_method") else "log_prob"
    row.update(base, kind=row["likelihood_kind"], how=how, log_z=view.info.get("log_z"))
    row.update(
        log_z_se=view.info.get("log_z_se"), ood_nll=float(per_ood.mean()), auroc_logp=auroc(-per, -per_ood)
    )
    row["auroc_complexity"] = auroc(complexity(-per, bits[0]), complexity(-per_ood, bits[1]))
    rows.append(row)
    sample = jax.jit(run.model.sample, static_argnums=2)(
        run.params, jax.random.fold_in(key, 5), cfg.n_samples
    )
    iwae = []
    if run.model.get(LatentVariable) is not None:
        curves = estimator_curves(
            run.model, run.params, test[: cfg.iwae_images], cfg.iwae_ks, 1, cfg.iwae_chunk, cfg.seed
        )
        iwae, k = summarize(curves, cfg.iwae_ks, D), max(cfg.iwae_ks)
        for r in iwae:
            if r["k"] == k and not r["estimator"].startswith("ELBO"):
                how = f"{r['estimator']}, k={k}, first {r['images']} test images"
                short = "iwae" if r["estimator"].startswith("IWAE") else "prior"
                rows.append(
                    dict(base, model=f"{label}/{short}{k}", kind="estimate", how=how, test_nll=r["nll"])
                )
                rows[-1]["test_nll_se"] = r["nll_se"]
    return dict(rows=rows, samples=to_unit_images(sample, form).tolist(), iwae=iwae)


def model_results(label: str, spec: RunSpec, data: dict, cfg: BinaryConfig, bits, fresh: bool) -> dict:
    """Train (or reuse) one run and evaluate it (cached in the run directory, keyed by the evaluation)."""
    form = cfg.forms.get(spec.model, "vector")
    train = as_form(data["train"], form)
    run = train_or_reuse(
        spec, cfg.out, train, eval_data=as_form(data["test"][:1000], form), fresh=fresh, desc=label
    )
    ev = (cfg.n_test, cfg.ood_dataset, cfg.normalize, cfg.iwae_ks, cfg.iwae_images, cfg.n_samples, cfg.seed)
    return cached(evaluation_cache(run.workdir, "binary", ev), lambda: evaluate(label, run, data, cfg, bits))


def sigmoid_row(data: dict, cfg: BinaryConfig, fresh: bool) -> dict:
    """The network with a sigmoid output trained by naive maximum likelihood, and its total mass."""
    train = dataclasses.replace(cfg.train, steps=cfg.sigmoid_steps)
    data_key = dict(dataset=f"{cfg.dataset}_binary", binarization=cfg.binarization, n_train=cfg.n_train)
    spec = RunSpec("ebm_naive_mle", (D,), jsonable(cfg.sigmoid_options), train, data_key)
    run = train_or_reuse(spec, cfg.out, data["train"], fresh=fresh, desc="sigmoid output")
    key = jax.random.key(cfg.seed + 13)

    def compute():
        nll, se, _ = evaluate_nll(run.model, run.params, data["test"], key)
        mass = sigmoid_mass(run.model, run.params, data["train"], key, cfg.mass_samples)
        return dict(mass, test_nll=nll, test_nll_se=se, params=num_params(run.params))

    out = cached(evaluation_cache(run.workdir, "mass", (cfg.mass_samples, cfg.n_test, cfg.seed)), compute)
    how = f"-log s(x); sum_x s(x) = e^{out['log_mass']:.1f} (log 2^784 = {out['log_num_states']:.1f})"
    return dict(out, model="sigmoid output", kind="none (not a distribution)", how=how, objective="naive MLE")


def markdown(rows: list[dict], iwae: list[dict], cfg: BinaryConfig, mass: dict) -> str:
    """results.md: the table, the log Z checks, IWAE against k, the sigmoid's mass."""
    head = (
        f"Binarized {cfg.dataset} ({cfg.binarization} binarization, seed {cfg.seed}), test NLL in nats "
        f"(bits/dim = nats / (784 ln 2)); out-of-distribution: binarized {cfg.ood_dataset} test. AUROC: "
        f"{cfg.dataset} test against {cfg.ood_dataset} (1 = the score ranks every in-distribution image "
        f"first).\n{LITERATURE}.\nMachine: {machine_description()}.\n\n"
    )
    digits = {"params": 0, "train_seconds": 0, "test_nll": 2, "log_z": 2, "ood_nll": 2}
    md = head + markdown_table(rows, COLUMNS, digits)
    md += "\n## log Z of the unnormalized models, every estimator\n\n"
    md += markdown_table([r for r in rows if r.get("log_z_ais") or r.get("log_z_grid")], LOG_Z_COLUMNS)
    md += "".join(f"\n- {line}" for line in exact_log_z_checks(rows)) + "\n"
    md += (
        f"\n## A sigmoid output is no distribution\n\nIts total mass over all 2^784 images: log sum_x s(x) = "
        f"{mass['log_mass']:.2f} ± {mass['log_mass_se']:.2f} (ESS {mass['log_mass_ess']:.0f} of "
        f"{mass['num_samples']}, defensive mixture of the Bernoulli model and the uniform), a distribution "
        f"gives 0; from the Bernoulli model alone {mass['log_mass_bernoulli_only']:.2f} ± "
        f"{mass['log_mass_bernoulli_only_se']:.2f} (ESS {mass['log_mass_bernoulli_only_ess']:.0f}), which "
        "misses the mass away from the data. The same in 2D: `make contrast` (docs/contrast.md).\n"
    )
    if iwae:
        cols = [
            ("estimator", "estimator"),
            ("k", "k"),
            ("nll", "NLL estimate"),
            ("nll_se", "± se"),
            ("bpd", "bits/dim"),
        ]
        md += f"\n## VAE: IWAE against the prior average (nats, first {cfg.iwae_images} test images)\n\n"
        md += markdown_table(iwae, cols)
    return md


def run(cfg: BinaryConfig, fresh: bool = False) -> list[dict]:
    """The study (see the module docstring)."""
    out, data = Path(cfg.out), load(cfg)
    bits = tuple(png_bits(as_form(data[s], "image255")) for s in ("test", "ood"))
    mass = sigmoid_row(data, cfg, fresh)
    t = naive_table(data["train"], data["test"])
    how = (
        f"counts + 1 over 2^784 states; {t['test_seen']} of {len(data['test'])} test images seen in training"
    )
    rows, iwae, panels = (
        [dict(t, model="naive table", kind="exact", how=how, objective="counts"), mass],
        [],
        [],
    )
    for label, spec in specs(cfg).items():
        res = model_results(label, spec, data, cfg, bits, fresh)
        rows += res["rows"]
        iwae += res["iwae"]
        panels.append((label, np.asarray(res["samples"], np.float32)))
    for r in rows:
        if r.get("test_nll") is not None:
            r["test_bpd"] = float(nats_to_bits_per_dim(r["test_nll"], D))
    write_results(out, rows, None, markdown(rows, iwae, cfg, mass))
    image_panels(out / "samples.png", panels)
    if iwae:
        write_results(
            out,
            iwae,
            None,
            markdown_table(iwae, [("estimator", "estimator"), ("k", "k"), ("nll", "NLL")]),
            "iwae",
        )
        figure(out / "iwae.png", iwae, "Bernoulli VAE: estimates of -log p(x) against k", key="nll")
    print((out / "results.md").read_text(), flush=True)
    return rows


def main(argv=None) -> None:
    """The command line (see the module docstring)."""
    run_cli("binary", PRESETS, run, argv, default_preset="cpu", doc=__doc__)


if __name__ == "__main__":
    main()
