"""Prose written from an image study's rows, never from memory: every number in these sentences is
read off the rows they describe.

    text = dequantization_note(rows)   # one draw (a bound) against k importance-weighted draws, paired
    text = energy_note(row)            # an energy model's log Z: AIS ladder, importance sampling, bracket
"""

from __future__ import annotations

import re

import numpy as np


def dequantization_note(rows: list[dict]) -> str:
    """For each model with importance-weighted dequantization rows: the gap from one draw to the most."""
    lines = []
    for r in rows:
        pattern = re.escape(r["model"]) + r"/iw\d+"
        iw = [x for x in rows if re.fullmatch(pattern, x["model"]) and x.get("test_bpd") is not None]
        if "/" in r["model"] or not iw or r.get("test_bpd") is None:
            continue
        top = max(iw, key=lambda x: int(x["model"].rsplit("/iw", 1)[1]))
        k, p = top["model"].rsplit("/iw", 1)[1], top["paired"][r["model"]]
        lines.append(
            f"- **{r['model']}**: one dequantization draw {r['test_bpd']:.3f} bits/dim (a bound, "
            f"{r['n_eval']} images); {k} draws importance-weighted {top['test_bpd']:.3f} (an estimate, "
            f"{top['n_eval']} images). Paired on the same {p['n']} images, {k} draws lower the bits/dim "
            f"by {-p['bpd']:.4f} ± {p['se']:.4f}: the one-draw number's dequantization slack."
        )
    lines += [
        ode_dequantization_line(r, rows) for r in rows if re.fullmatch(r"[^/]+/ode_.+_iw\d+", r["model"])
    ]
    return ("\n" + "\n".join(lines) + "\n") if lines else ""


def ode_dequantization_line(r: dict, rows: list[dict]) -> str:
    """The probability-flow ODE with k dequantization draws against its one-draw row, paired."""
    base = r["model"].split("/", 1)[0]
    one = next((x for x in rows if x["model"] == f"{base}/ode" and x["model"] in r["paired"]), None)
    k = r["model"].rsplit("_iw", 1)[1]
    if one is None:
        return f"- **{r['model']}**: {r['test_bpd']:.3f} bits/dim with {k} draws ({r['n_eval']} images)."
    p = r["paired"][one["model"]]
    return (
        f"- **{one['model']}** (one dequantization draw, {one['test_bpd']:.3f} on {one['n_eval']} images) "
        f"against {k} draws importance-weighted ({r['test_bpd']:.3f} on {r['n_eval']}): paired on the "
        f"same {p['n']} images, {k} draws lower the bits/dim by {-p['bpd']:.4f} ± {p['se']:.4f}."
    )


def energy_note(row: dict) -> str:
    """How far to trust an energy model's number: AIS against temperatures, IS beside it, the bracket."""
    a = row["ais"]
    steps = sorted(a["by_temps"].items(), key=lambda kv: int(kv[0]))
    ladder = ", ".join(f"K={k}: {v['log_z']:.1f} ± {v['se']:.1f} (ESS {v['ess']:.1f})" for k, v in steps)
    n, ess = a["num_chains"], row["log_z_ais_ess"]
    text = (
        f"\n**{row['model']}**: log Z by AIS ({n} chains, {a['transition']} moves, path {a['path']}): "
        f"{ladder}. AIS is a lower bound on log Z in expectation, so its bits/dim is optimistic by the "
        "remaining gap. "
    )
    text += (
        f"ESS {ess:.1f} of {n}: fewer than 10% of the chains carry it, so the point estimate is "
        "undetermined. "
        if row.get("trust") == "undetermined"
        else f"ESS {ess:.0f} of {n}. "
    )
    if row.get("log_z_is") is not None:
        diff = row["log_z_is"] - row["log_z_ais"]
        se = float(np.hypot(row["log_z_is_se"], row["log_z_ais_se"]))
        agree = (
            "disagree (more than 3 standard errors + 0.05 nats apart), so the point estimate is undetermined"
            if row.get("trust") == "disagree"
            else (
                "agree within 2 standard errors"
                if abs(diff) <= 2 * se
                else "differ by over 2 standard errors"
            )
        )
        text += (
            "Importance sampling from the model's own Gaussian (independent of AIS): log Z "
            f"{row['log_z_is']:.1f} ± {row['log_z_is_se']:.1f} (ESS {row['log_z_is_ess']:.1f}); the two "
            f"{agree} ({diff:+.1f}). "
        )
    if row.get("test_bpd_bracket"):
        lo, hi = row["test_bpd_bracket"]
        b = row["log_z_bracket"][1]
        text += (
            f"The network's term is bounded (|f| < {b:g}) on a normalized Gaussian, so log Z lies in "
            f"({-b:g}, {b:g}) and the bits/dim in **[{lo:.3f}, {hi:.3f}]** whatever the estimators missed."
        )
    return text + "\n"
