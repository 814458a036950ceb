"""`make readme`: README.md and docs/*.md regenerated from the results, and nothing else writes them.

    python -m experiments.readme            # every page with a block whose results exist

A page marks each generated block with `<!-- NAME:begin -->` ... `<!-- NAME:end -->`; the block is
replaced by BLOCKS[NAME](root) (a study's full table, or a short headline computed from its
results.json) when that study's results exist, and left as it is when they do not, so a partial set
of results never erases a table. The figures of FIGURES are copied into docs/figures/. Every sentence
of the docs that quotes a measured number is in such a block (tests/test_readme.py checks the rest).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

PAGES = ("README.md", "docs")
UNTRUSTED = ("undetermined", "disagree")  # trust verdicts under which a headline gives the bracket


def _file(path: str) -> Callable[[Path], str | None]:
    return lambda root: (root / path).read_text() if (root / path).exists() else None


def _rows(root: Path, path: str) -> list[dict] | None:
    p = root / path
    return json.loads(p.read_text()) if p.exists() else None


def _f(v, digits=3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def toy2d_headline(root: Path) -> str | None:
    """Test NLL minus the true entropy of each model on each demo dataset."""
    rows = _rows(root, "results/toy2d/results.json")
    if not rows:
        return None
    models = list(dict.fromkeys(r["model"] for r in rows))
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    by = {(r["dataset"], r["model"]): r for r in rows}
    lines = [
        "| gap to the true entropy (nats) | " + " | ".join(models) + " |",
        "|---" * (len(models) + 1) + "|",
    ]
    for ds in datasets:
        cells = [_f(by[(ds, m)]["gap"]) if (ds, m) in by else "-" for m in models]
        lines.append(f"| {ds} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def contrast_headline(root: Path) -> str | None:
    """Per dataset: the best normalized model and the best pure energy model (normalized by AIS; an
    energy on a normalized base, a model with a "<model>/base" row, is left to the full table)."""
    rows = _rows(root, "results/contrast/results.json")
    if not rows:
        return None
    lines = [
        "| dataset | truth NLL | best exact model | NLL | best pure energy | NLL | its log Z: AIS / grid |",
        "|---|---|---|---|---|---|---|",
    ]
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        sel = [r for r in rows if r["dataset"] == ds and r.get("test_nll") is not None]
        truth = next((r for r in sel if r["model"] == "truth"), None)
        on_base = {r["model"].split("/")[0] for r in sel if r["model"].endswith("/base")}
        flows = [r for r in sel if r["likelihood_kind"] == "exact" and r["model"] != "truth"]
        flows = [r for r in flows if r["model"].split("/")[0] not in on_base]
        ebms = [r for r in sel if r.get("log_z_ais") is not None and r["model"] not in on_base]
        if not flows or not ebms:
            continue
        f, e = min(flows, key=lambda r: r["test_nll"]), min(ebms, key=lambda r: r["test_nll"])
        log_z = f"{_f(e['log_z_ais'])} / {_f(e.get('log_z_grid'))}"
        lines.append(
            f"| {ds} | {_f(truth['test_nll']) if truth else '-'} | {f['model']} | {_f(f['test_nll'])} | "
            f"{e['model']} | {_f(e['test_nll'])} | {log_z} |"
        )
    return "\n".join(lines) + "\n"


def images_headline(root: Path) -> str | None:
    """Each view's kind and test bits/dim."""
    rows = _rows(root, "results/images/results.json")
    if not rows:
        return None
    lines = ["| model | kind | test bits/dim | ± se |", "|---|---|---|---|"]
    for r in rows:
        bpd = r.get("test_bpd")
        if r.get("trust") in UNTRUSTED and r.get("test_bpd_bracket"):
            lo, hi = r["test_bpd_bracket"]
            lines.append(
                f"| {r['model']} | {r['likelihood_kind']} (point estimate undetermined) | "
                f"in [{lo:.3f}, {hi:.3f}] | - |"
            )
        else:
            lines.append(
                f"| {r['model']} | {r['likelihood_kind']} | {_f(bpd)} | {_f(r.get('test_bpd_se'))} |"
            )
    return "\n".join(lines) + "\n"


def ood_headline(root: Path) -> str | None:
    """Per model: raw log p and the best score's AUROC, Fashion-MNIST test against MNIST."""
    rows = _rows(root, "results/ood/results.json")
    if not rows:
        return None
    first = rows[0]["ood_set"]
    lines = [f"| model | AUROC of log p ({first}) | best score | its AUROC |", "|---|---|---|---|"]
    for model in dict.fromkeys(r["model"] for r in rows):
        sel = [r for r in rows if r["model"] == model and r["ood_set"] == first]
        raw = next((r for r in sel if r["score"] in ("log_p", "energy")), None)
        best = max(sel, key=lambda r: r["auroc"])
        lines.append(
            f"| {model} | {_f(raw['auroc']) if raw else '-'} | {best['score']} | {_f(best['auroc'])} |"
        )
    return "\n".join(lines) + "\n"


def _span(values: list[float], digits: int = 3) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.{digits}f}" if lo == hi else f"{lo:.{digits}f} to {hi:.{digits}f}"


def toy2d_findings(root: Path) -> str | None:
    """Per dataset, the model closest to the true entropy and the spread of the gaps."""
    rows = [r for r in (_rows(root, "results/toy2d/results.json") or []) if r.get("gap") is not None]
    if not rows:
        return None
    lines = []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        sel = sorted((r for r in rows if r["dataset"] == ds), key=lambda r: r["gap"])
        lines.append(
            f"- {ds}: closest to the floor {sel[0]['model']} (gap {sel[0]['gap']:.3f}), farthest "
            f"{sel[-1]['model']} ({sel[-1]['gap']:.3f})."
        )
    return "In this page's table (generated from results/toy2d/results.json):\n\n" + "\n".join(lines) + "\n"


def ood_findings(root: Path) -> str | None:
    """How many models' raw log p prefer MNIST, what the complexity score does, the flipped set."""
    rows = _rows(root, "results/ood/results.json")
    if not rows:
        return None
    raw = [r for r in rows if r["score"] in ("log_p", "energy") and r["ood_set"] == "mnist"]
    comp = [r for r in rows if r["score"] == "complexity" and r["ood_set"] == "mnist"]
    flip = [r["auroc"] for r in rows if r["ood_set"] == "flipped"]
    lines = []
    if raw:
        below = sum(r["auroc"] < 0.5 for r in raw)
        lines.append(
            f"- Raw log p (or energy) against MNIST: AUROC {_span([r['auroc'] for r in raw])}; {below} of "
            f"{len(raw)} views below one half (they prefer the digits)."
        )
    if comp:
        lines.append(
            f"- The complexity score against MNIST: AUROC {_span([r['auroc'] for r in comp])} over "
            f"{len(comp)} views."
        )
    if flip:
        near = sum(abs(a - 0.5) < 0.1 for a in flip)
        lines.append(
            f"- Flipped Fashion-MNIST: {near} of {len(flip)} scores within 0.1 of chance (AUROC "
            f"{_span(flip)})."
        )
    return "In this page's table (generated from results/ood/results.json):\n\n" + "\n".join(lines) + "\n"


def families_findings(root: Path) -> str | None:
    """For each variant, the range of the default's speed-up over it across families."""
    rows = _rows(root, "results/bench/families.json")
    if not rows:
        return None
    lines = []
    for variant in dict.fromkeys(r["variant"] for r in rows if r["variant"] != "default"):
        sel = [r for r in rows if r["variant"] == variant and r.get("speedup")]
        if sel:
            slower = [r["family"] for r in sel if r["speedup"] < 1.0]
            tail = f"; the variant was faster for {', '.join(slower)}" if slower else ""
            lines.append(f"- `{variant}`: default {_span([r['speedup'] for r in sel], 2)}x faster{tail}.")
    return "In this table (generated from results/bench/families.json):\n\n" + "\n".join(lines) + "\n"


def binary_headline(root: Path) -> str | None:
    """The binary world's rows: model, kind, test NLL in nats."""
    rows = _rows(root, "results/binary/results.json")
    if not rows:
        return None
    lines = ["| model | kind | test NLL (nats) | ± se |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['kind']} | {_f(r.get('test_nll'))} | {_f(r.get('test_nll_se'))} |")
    return "\n".join(lines) + "\n"


BLOCKS: dict[str, Callable[[Path], str | None]] = {
    "binary-headline": binary_headline,
    "toy2d-findings": toy2d_findings,
    "ood-findings": ood_findings,
    "families-findings": families_findings,
    "toy2d-headline": toy2d_headline,
    "toy2d-table": _file("results/toy2d/results.md"),
    "toy-full-table": _file("results/toy2d_full/results.md"),
    "parzen-table": _file("results/toy2d_parzen/parzen.md"),
    "contrast-headline": contrast_headline,
    "contrast-table": _file("results/contrast/results.md"),
    "demos-table": _file("results/contrast/demos/demos.md"),
    "diffusion-table": _file("results/diffusion/results.md"),
    "images-headline": images_headline,
    "images-table": _file("results/images/results.md"),
    "quality-table": _file("results/images/quality.md"),
    "ode-ladder-table": _file("results/ode_ladder/results.md"),
    "vae-estimators-table": _file("results/vae_estimators/estimators.md"),
    "ood-headline": ood_headline,
    "ood-table": _file("results/ood/results.md"),
    "own-data-table": _file("results/own_data/results.md"),
    "binary-table": _file("results/binary/results.md"),
    "bench-flows-table": _file("results/bench/flows.md"),
    "peers-table": _file("results/bench/peers.md"),
    "images-peers-table": _file("results/bench/images_peers.md"),
    "families-table": _file("results/bench/families.md"),
    "scale-table": _file("results/bench/scale.md"),
}
FIGURES = {
    "results/toy2d/checkerboard.png": "docs/figures/toy2d_checkerboard.png",
    "results/toy2d/moons.png": "docs/figures/toy2d_moons.png",
    "results/contrast/moons.png": "docs/figures/contrast_moons.png",
    "results/contrast/demos/naive_mle_diverges.png": "docs/figures/naive_mle_diverges.png",
    "results/contrast/demos/sigmoid_not_a_density.png": "docs/figures/sigmoid_not_a_density.png",
    "results/diffusion/moons.png": "docs/figures/diffusion_moons.png",
    "results/toy2d_parzen/checkerboard.png": "docs/figures/parzen_checkerboard.png",
    "results/images/samples.png": "docs/figures/samples_images.png",
    "results/binary/samples.png": "docs/figures/samples_binary.png",
}


def replace_block(text: str, name: str, body: str) -> str:
    """Replace the text between the begin/end markers of `name` by `body`."""
    pattern = re.compile(rf"(<!-- {re.escape(name)}:begin -->\n).*?(\n<!-- {re.escape(name)}:end -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"no block {name!r}; add '<!-- {name}:begin -->' and '<!-- {name}:end -->' markers")
    return pattern.sub(lambda m: m.group(1) + body.strip() + m.group(2), text)


def block_names(text: str) -> list[str]:
    """The generated blocks a page marks."""
    return re.findall(r"<!-- ([a-z0-9-]+):begin -->", text)


def pages(root: Path) -> list[Path]:
    """README.md and every docs/*.md."""
    out = [root / "README.md"] if (root / "README.md").exists() else []
    return out + sorted((root / "docs").glob("*.md"))


def update(root: Path = Path(".")) -> list[str]:
    """Regenerate every page's blocks whose results exist; copy the figures. Returns what changed."""
    done = []
    for page in pages(root):
        text = page.read_text()
        new = text
        for name in block_names(text):
            if name not in BLOCKS:
                raise ValueError(f"{page}: unknown block {name!r}; known: {', '.join(BLOCKS)}")
            body = BLOCKS[name](root)
            if body is not None:
                new = replace_block(new, name, body)
        if new != text:
            page.write_text(new)
            done.append(str(page.relative_to(root)))
    for src, dst in FIGURES.items():
        if (root / src).exists():
            (root / dst).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / src, root / dst)
            done.append(dst)
    return done


def main(argv=None) -> None:
    """Regenerate the pages and say what changed."""
    done = update()
    print("updated: " + (", ".join(done) if done else "nothing (no results yet)"), file=sys.stderr)


if __name__ == "__main__":
    main()
