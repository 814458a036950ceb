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
import sys
import time
from pathlib import Path

from gen_jax.training.config import TrainConfig


def _fmt_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Progress:
    """A tqdm bar on a terminal, else a line every `every_s` seconds; `log_file` gets the lines too."""

    def __init__(
        self,
        total: int,
        desc: str,
        every_s: float = 30.0,
        initial: int = 0,
        log_file=None,
        enabled: bool = True,
        unit: str = "step",
    ):
        self.total, self.desc, self.every_s, self.unit = total, desc, every_s, unit
        self.n = self.start = initial
        self.t0 = self.t_last = time.perf_counter()
        self.log_file = log_file
        self.enabled = enabled
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total, initial=initial, desc=desc, leave=False, dynamic_ncols=True, unit=unit
            )
        self._line(f"start ({initial}/{total} {unit}s done)")

    def update(self, n: int, **postfix) -> None:
        """Advance by n; report `postfix` (floats are shown with 4 significant digits)."""
        self.n += n
        now = time.perf_counter()
        text = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in postfix.items())
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix_str(text)
        if now - self.t_last >= self.every_s or self.n >= self.total:
            self.t_last = now
            rate = (self.n - self.start) / max(now - self.t0, 1e-9)
            left = (self.total - self.n) / rate if rate > 0 else math.inf
            pct = 100.0 * self.n / max(self.total, 1)
            self._line(
                f"{self.n}/{self.total} {self.unit}s ({pct:.0f}%), {rate:.3g}/s, {_fmt_seconds(left)} left"
                + (f", {text}" if text else "")
            )

    def _line(self, text: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {self.desc}: {text}"
        if self.log_file is not None:
            with open(self.log_file, "a") as f:
                f.write(line + "\n")
        if self.enabled and self.bar is None:
            print(line, file=sys.stderr, flush=True)

    def close(self, text: str | None = None) -> None:
        """Close the bar and write a last line."""
        if self.bar is not None:
            self.bar.close()
        self._line(
            text
            or f"done, {self.n}/{self.total} {self.unit}s in {_fmt_seconds(time.perf_counter() - self.t0)}"
        )


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
