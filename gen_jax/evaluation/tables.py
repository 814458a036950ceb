"""Tables and result files: markdown from rows, results.json / results.md, the machine line."""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np

from gen_jax.evaluation.config import jsonable


def fmt(v, digits: int = 3) -> str:
    """A cell: '-' for missing or NaN, floats to `digits` decimals."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.{digits}f}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(fmt(x, digits) for x in v) + "]"
    return str(v)


def markdown_table(
    rows: Sequence[dict], columns: Sequence[tuple[str, str]], digits: dict | None = None
) -> str:
    """A markdown table; `columns` are (key, header) pairs, `digits` key -> decimals (default 3)."""
    digits = digits or {}
    head = "| " + " | ".join(h for _, h in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(fmt(r.get(k), digits.get(k, 3)) for k, _ in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body]) + "\n"


def write_results(
    out_dir: Path, rows: list[dict], keys: Sequence[str] | None, md: str, name: str = "results"
) -> None:
    """`<name>.json` (rows restricted to `keys`, in that order; all keys when None) and `<name>.md`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clean = [{k: jsonable(r.get(k)) for k in (keys or r)} for r in rows]
    (out_dir / f"{name}.json").write_text(json.dumps(clean, indent=1) + "\n")
    (out_dir / f"{name}.md").write_text(md)


def machine_description() -> str:
    """The device and host, e.g. 'cpu:cpu (1 device(s)); host AMD EPYC, 2 cores'."""
    dev = jax.devices()[0]
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    devices = f"{dev.platform}:{dev.device_kind} ({len(jax.devices())} device(s))"
    return f"{devices}; host {cpu}, {os.cpu_count()} cores"


def row_summary(r: dict) -> str:
    """One line per row of a vector study, as the run goes."""
    parts = [f"{r['dataset']:>12s} {r['model']:>16s} {str(r['likelihood_kind']):>12s}"]
    if r.get("test_nll") is not None:
        parts.append(f"NLL {r['test_nll']:.4f} ± {r['test_nll_se']:.4f}")
    if r.get("gap") is not None:
        parts.append(f"gap {r['gap']:+.4f}")
    if r.get("log_z_ais") is not None:
        parts.append(f"logZ ais {r['log_z_ais']:.4f} ± {r['log_z_ais_se']:.4f}")
        if r.get("log_z_grid") is not None:
            parts.append(f"grid {r['log_z_grid']:.4f}")
    if r.get("sample_mmd") is not None:
        parts.append(f"mmd {r['sample_mmd']:.5f}")
    return "  ".join(parts)
