"""Progress of long work, where people run it: a tqdm bar on a terminal; one line every `every_s`
seconds otherwise (nohup, a batch scheduler, `make ... > log`), also appended to a log file if given.

    progress = Progress(total, "AIS", unit="temperature")
    progress.update(n, loss=0.3)
    progress.close()

Used by training (`gen_jax.training.monitor`) and by every long evaluation (AIS over temperatures,
ODE solves over chunks, IWAE and OOD scoring over images).
"""

from __future__ import annotations

import math
import sys
import time


def _fmt_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _plural(unit: str) -> str:
    return unit + ("es" if unit.endswith(("ch", "sh", "s", "x")) else "s")


class Progress:
    """A tqdm bar on a terminal, else a line every `every_s` seconds; `log_file` gets the lines too.

    quiet_s: show nothing (no bar, no lines) for work done within this many seconds; long work then
    reports as usual (for evaluations that are sometimes long and often short)."""

    def __init__(
        self,
        total: int,
        desc: str,
        every_s: float = 30.0,
        initial: int = 0,
        log_file=None,
        enabled: bool = True,
        unit: str = "step",
        quiet_s: float = 0.0,
    ):
        self.total, self.desc, self.every_s, self.unit = total, desc, every_s, unit
        self.n = self.start = initial
        self.t0 = self.t_last = time.perf_counter()
        self.log_file = log_file
        self.enabled = enabled
        self.quiet_s, self.shown = quiet_s, quiet_s <= 0
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total,
                initial=initial,
                desc=desc,
                leave=False,
                dynamic_ncols=True,
                unit=unit,
                delay=quiet_s,
            )
        if self.shown:
            self._line(f"start ({initial}/{total} {_plural(unit)} done)")

    def update(self, n: int, **postfix) -> None:
        """Advance by n; report `postfix` (floats are shown with 4 significant digits)."""
        self.n += n
        now = time.perf_counter()
        text = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in postfix.items())
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix_str(text)
        if not self.shown and now - self.t0 >= self.quiet_s:
            self.shown, self.t_last = True, -math.inf  # long after all: report from now on
        if self.shown and (now - self.t_last >= self.every_s or self.n >= self.total):
            self.t_last = now
            rate = (self.n - self.start) / max(now - self.t0, 1e-9)
            left = (self.total - self.n) / rate if rate > 0 else math.inf
            pct = 100.0 * self.n / max(self.total, 1)
            self._line(
                f"{self.n}/{self.total} {_plural(self.unit)} ({pct:.0f}%), {rate:.3g}/s, "
                f"{_fmt_seconds(left)} left" + (f", {text}" if text else "")
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
        if not self.shown and time.perf_counter() - self.t0 < self.quiet_s:
            return
        self._line(
            text
            or f"done, {self.n}/{self.total} {_plural(self.unit)} in "
            f"{_fmt_seconds(time.perf_counter() - self.t0)}"
        )
