"""Figures for the experiments (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def density_and_samples_figure(
    path: str | Path,
    title: str,
    box: tuple[float, float, float, float],
    panels: list[dict],
    max_points: int = 5000,
) -> None:
    """One column per panel: density image on top, samples below.

    Each panel is a dict with `label`, optional `log_density` ((n, n) array on the box grid,
    indexed [y, x]; None draws "no density") and optional `samples` ((m, 2) array).
    """
    plt = _plt()
    cols = len(panels)
    fig, axes = plt.subplots(2, cols, figsize=(2.4 * cols, 5.0), squeeze=False)
    extent = box
    for j, panel in enumerate(panels):
        top, bottom = axes[0, j], axes[1, j]
        logd = panel.get("log_density")
        if logd is not None:
            dens = np.exp(np.clip(np.nan_to_num(logd, nan=-np.inf), -50, 50))
            # colour scale clipped at the 99.5th percentile: a narrow spike (common in flows at the
            # edges of a support) would otherwise leave the rest of the picture black
            top.imshow(
                dens,
                origin="lower",
                extent=extent,
                cmap="magma",
                aspect="equal",
                interpolation="nearest",
                vmin=0.0,
                vmax=max(float(np.quantile(dens, 0.995)), 1e-30),
            )
        else:
            top.text(0.5, 0.5, panel.get("no_density", "no density"), ha="center", va="center", fontsize=8)
        top.set_title(panel["label"], fontsize=9)
        samples = panel.get("samples")
        if samples is not None:
            s = np.asarray(samples)[:max_points]
            bottom.scatter(s[:, 0], s[:, 1], s=0.5, alpha=0.5, color="k", rasterized=True)
        bottom.set_xlim(box[0], box[1])
        bottom.set_ylim(box[2], box[3])
        bottom.set_aspect("equal")
        for ax in (top, bottom):
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("density", fontsize=9)
    axes[1, 0].set_ylabel("samples", fontsize=9)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def curves_figure(
    path: str | Path, title: str, series: dict[str, tuple], xlabel: str, ylabel: str, **kw
) -> None:
    """Line plot of named (x, y) series."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.0, 3.5))
    for label, (x, y) in series.items():
        ax.plot(x, y, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if kw.get("logx"):
        ax.set_xscale("log")
    if kw.get("hline") is not None:
        ax.axhline(kw["hline"], color="gray", ls="--", lw=1, label=kw.get("hline_label"))
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def curve_panels_figure(path: str | Path, title: str, panels: list[dict]) -> None:
    """Side-by-side line plots. Each panel: `title`, `series` {label: (x, y)}, `xlabel`, `ylabel`,
    optional `hline` (value, label), `yscale` and `xscale` ("linear", "log", "symlog", ...)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 3.6), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        for label, (x, y) in panel["series"].items():
            ax.plot(x, y, label=label, marker=".")
        if panel.get("hline") is not None:
            value, label = panel["hline"]
            ax.axhline(value, color="gray", ls="--", lw=1, label=label)
        ax.set_yscale(panel.get("yscale", "linear"))
        ax.set_xscale(panel.get("xscale", "linear"))
        ax.set_xlabel(panel.get("xlabel", ""))
        ax.set_ylabel(panel.get("ylabel", ""))
        ax.set_title(panel.get("title", ""), fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def image_grid(path: str | Path, images: np.ndarray, title: str = "", cols: int | None = None) -> None:
    """A grid of uint8 (or [0, 1] float) images (n, H, W, 1) saved as one PNG."""
    plt = _plt()
    cols = cols or int(np.ceil(np.sqrt(len(images))))
    rows = int(np.ceil(len(images) / cols))
    canvas = _canvas(images, cols)
    fig, ax = plt.subplots(figsize=(cols * 0.45 + 0.5, rows * 0.45 + 0.7))
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _canvas(images: np.ndarray, cols: int) -> np.ndarray:
    images = np.asarray(images)
    rows = int(np.ceil(len(images) / cols))
    h, w = images.shape[1:3]
    canvas = np.ones((rows * (h + 2), cols * (w + 2)), np.float32)
    scale = 255.0 if images.dtype == np.uint8 or images.max() > 1.5 else 1.0
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        canvas[r * (h + 2) + 1 : r * (h + 2) + 1 + h, c * (w + 2) + 1 : c * (w + 2) + 1 + w] = (
            img[..., 0] / scale
        )
    return canvas


def image_panels(path: str | Path, panels: list[tuple[str, np.ndarray]], cols: int = 6) -> None:
    """Several labelled grids of images side by side (e.g. every model's samples), one PNG."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(1.9 * len(panels) + 0.3, 2.4), squeeze=False)
    for ax, (title, images) in zip(axes[0], panels, strict=True):
        ax.imshow(_canvas(images, cols), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def score_histograms(
    path: str | Path, title: str, scores: dict, set_names, titles: dict | None = None
) -> None:
    """One panel per (view, score): the score's histogram on the in-distribution images against each
    OOD set, each normalized to unit area. `scores`: view -> set -> score name -> values ("in" the
    in-distribution set). The axis spans "in" and the first OOD set with a margin; values of the other
    sets beyond it are piled into the edge bins (noise and constant images are often thousands of nats
    away)."""
    plt = _plt()
    titles = titles or {}
    panels = [(v, s) for v, by_set in scores.items() for s in by_set["in"]]
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.6 * rows), squeeze=False)
    for ax, (view, score) in zip(axes.ravel(), panels, strict=False):
        series = {"in-distribution": scores[view]["in"][score]}
        series.update({titles.get(s, s): scores[view][s][score] for s in set_names})
        core = np.concatenate([v[np.isfinite(v)] for v in list(series.values())[:2]])
        lo, hi = np.quantile(core, [0.005, 0.995]) if len(core) else (0.0, 1.0)
        pad = 0.15 * (hi - lo) if hi > lo else 1.0
        lo, hi = lo - pad, hi + pad
        for label, v in series.items():
            clipped = np.clip(np.nan_to_num(v, neginf=lo, posinf=hi), lo, hi)
            ax.hist(clipped, bins=np.linspace(lo, hi, 41), density=True, histtype="step", lw=1.2, label=label)
        ax.set_title(f"{view}: {score}", fontsize=9)
        ax.set_yticks([])
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(panels) :]:
        ax.set_axis_off()
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
