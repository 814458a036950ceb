"""What a run shows while it trains and leaves behind: metrics.jsonl, TensorBoard event files, a
progress bar on a terminal or periodic lines in a log, train.log, and a training-curve figure.

    monitor = Monitor(workdir, total_steps, desc, cfg)     # workdir None: nothing on disk
    monitor.log(row)             # a dict with "step": to metrics.jsonl, TensorBoard, progress
    monitor.close()              # curves.png beside metrics.jsonl

Progress works where people run long jobs: on a terminal a tqdm bar; when output is not a terminal
(nohup, a batch scheduler, `make ... > log`) one line every `cfg.progress_every_s` seconds with the
step, loss, steps/s and the time left. The same lines go to <workdir>/train.log either way.
TensorBoard files are written with tensorboardX (no TensorFlow needed): `tensorboard --logdir
<workdir>/tensorboard`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from gen_jax.core.progress import Progress
from gen_jax.training.config import TrainConfig


class Monitor:
    """metrics.jsonl + TensorBoard + progress + curves.png for one training run (see the module doc)."""

    def __init__(
        self, workdir: Path | None, total: int, initial: int, desc: str, cfg: TrainConfig, primary: bool
    ):
        self.workdir = workdir if primary else None
        self.history: list[dict] = []
        self.metrics_path = self.workdir / "metrics.jsonl" if self.workdir is not None else None
        self.writer = None
        if self.workdir is not None and cfg.tensorboard:
            from tensorboardX import SummaryWriter

            self.writer = SummaryWriter(str(self.workdir / "tensorboard"), flush_secs=30)
        log_file = self.workdir / "train.log" if self.workdir is not None else None
        self.progress = Progress(
            total, desc, cfg.progress_every_s, initial, log_file, cfg.progress and primary
        )

    def log(self, row: dict, advance: int = 0) -> None:
        """Record one row (train metrics or an evaluation) at row["step"]."""
        self.history.append(row)
        if self.metrics_path is not None:
            with self.metrics_path.open("a") as f:
                f.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for name, value in row.items():
                if name not in ("step", "time") and isinstance(value, (int, float)) and math.isfinite(value):
                    group = "eval" if name.startswith("eval") else "train"
                    self.writer.add_scalar(f"{group}/{name}", value, row["step"])
        shown = {k: row[k] for k in ("loss", "eval_nll") if k in row}
        if advance or shown:
            self.progress.update(advance, **shown)

    def close(self, curves: bool = True) -> None:
        """Flush TensorBoard, end the progress, draw curves.png."""
        self.progress.close()
        if self.writer is not None:
            self.writer.close()
        if curves and self.workdir is not None and self.history:
            training_curves(self.workdir / "curves.png", self.history, self.progress.desc)


def training_curves(path: Path, history: list[dict], title: str) -> None:
    """curves.png: the loss (and held-out NLL when logged) against the step."""
    from gen_jax.plotting import curve_panels_figure

    train = [r for r in history if "loss" in r]
    evals = [r for r in history if "eval_nll" in r]
    panels = [
        dict(
            title="training loss",
            series={"loss": ([r["step"] for r in train], [r["loss"] for r in train])},
            xlabel="step",
            ylabel="loss",
        )
    ]
    if evals:
        series = {"held-out NLL": ([r["step"] for r in evals], [r["eval_nll"] for r in evals])}
        panels.append(dict(title="held-out NLL (nats)", series=series, xlabel="step", ylabel="nats"))
    curve_panels_figure(path, title, panels)
