"""Prose written from an image study's rows, never from memory: every number in these sentences is
read off the rows they describe.

    text = dequantization_note(rows)   # one draw (a bound) against k importance-weighted draws, paired
    text = energy_note(row)            # an energy model's log Z: AIS ladder, importance sampling, bracket
    lines = contrast_checks(rows, sandwich, "patches3x3")   # the contrast study's measured statements
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
    pilot = f", step sizes from one pilot on {a['pilot_temps']} temperatures" if a.get("pilot_temps") else ""
    pilot += ", chains in its base flow's latent space" if a.get("latent") else ""
    text = (
        f"\n**{row['model']}**: log Z by AIS ({n} chains, {a['transition']} moves, path {a['path']}{pilot}): "
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
            "Importance sampling from the model's own normalized term (its Gaussian or its flow; "
            "independent of AIS): log Z "
            f"{row['log_z_is']:.1f} ± {row['log_z_is_se']:.1f} (ESS {row['log_z_is_ess']:.1f}); the two "
            f"{agree} ({diff:+.1f}). "
        )
    if row.get("log_z_learned") is not None:
        text += f"The log Z it learned (NCE) is {row['log_z_learned']:.1f}: a claim, not the normalizer. "
    if row.get("test_bpd_bracket"):
        lo, hi = row["test_bpd_bracket"]
        b = row["log_z_bracket"][1]
        text += (
            f"The network's term is bounded (|f| < {b:g}) on a normalized density, so log Z lies in "
            f"({-b:g}, {b:g}) and the bits/dim in **[{lo:.3f}, {hi:.3f}]** whatever the estimators missed."
        )
    return text + "\n"


def contrast_checks(rows: list[dict], sandwich: list[dict], discrete: str) -> list[str]:
    """Measured statements of the contrast a reader can verify from its table: AIS against the grid /
    enumeration, the bidirectional sandwich, the learned (NCE) log Z against the grid or enumeration,
    and per dataset the best unnormalized model against the NSF. `discrete`: the tiny world's name."""
    lines = []
    both = [r for r in rows if r.get("log_z_ais") is not None and r.get("log_z_grid") is not None]
    for world, sel in (
        ("2D energy models", [r for r in both if r["dataset"] != discrete]),
        ("tiny world", [r for r in both if r["dataset"] == discrete]),
    ):
        if sel:
            diffs = [abs(r["log_z_ais"] - r["log_z_grid"]) for r in sel]
            ratios = ", ".join(f"{d / r['log_z_ais_se']:.2f}" for d, r in zip(diffs, sel, strict=True))
            ref = "grid" if world.startswith("2D") else "enumeration"
            lines.append(
                f"AIS vs {ref} log Z, {world} ({len(sel)} models): max |diff| = {max(diffs):.4f} nats; "
                f"|diff| / se: {ratios}"
            )
    for s in sandwich:
        lo, hi, z = s["bound_forward"], s["bound_reverse"], s["log_z_enumerated"]
        held = "holds" if lo <= z <= hi else "VIOLATED"
        lines.append(
            f"tiny world, {s['model']}: single-chain bounds {lo:.4f} ± {s['bound_forward_se']:.4f} <= "
            f"enumerated {z:.4f} <= {hi:.4f} ± {s['bound_reverse_se']:.4f} ({held}); forward AIS "
            f"{s['log_z_forward']:.4f}, reverse AIS {s['log_z_reverse']:.4f}"
        )
    return lines + learned_log_z_lines(rows) + best_unnormalized_lines(rows)


def learned_log_z_lines(rows: list[dict]) -> list[str]:
    """NCE's learned log Z (its self-normalization claim) against the grid / enumeration."""
    sel = [r for r in rows if r.get("log_z_learned") is not None and r.get("log_z_grid") is not None]
    if not sel:
        return []
    parts = ", ".join(f"{r['dataset']}/{r['model']} {r['log_z_learned'] - r['log_z_grid']:+.3f}" for r in sel)
    return [f"learned log Z - grid/enumerated log Z (NCE's self-normalization error, nats): {parts}"]


def models_on_a_base(rows: list[dict]) -> set[str]:
    """The models with a "<model>/base" row: energies on a normalized base (`NormalizedBase`)."""
    return {r["model"].split("/")[0] for r in rows if r["model"].endswith("/base")}


def best_unnormalized_lines(rows: list[dict], reference: str = "nsf", goal: float = 0.05) -> list[str]:
    """Per dataset, the best energy model's test NLL against the reference flow's: the best pure energy
    (no normalized base), and beside it the best energy on a normalized base (a model with a
    "<model>/base" row), which starts from a flow and so says less about training without Z."""
    out = []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        here = [r for r in rows if r["dataset"] == ds and r.get("test_nll") is not None]
        ref = [r for r in here if r["model"] == reference]
        on_base = models_on_a_base(here)
        ebms = [r for r in here if r.get("log_z_ais") is not None]
        pure, based = (
            [r for r in ebms if r["model"] not in on_base],
            [r for r in ebms if r["model"] in on_base],
        )
        if not ref or not ebms:
            continue
        parts = []
        for label, sel in (("best pure energy model", pure), ("on a normalized base", based)):
            if sel:
                best = min(sel, key=lambda r: r["test_nll"])
                gap = best["test_nll"] - ref[0]["test_nll"]
                verdict = "within" if gap <= goal else "NOT within"
                parts.append(
                    f"{label} {best['model']} {best['test_nll']:.4f}: {gap:+.4f} nats ({verdict} {goal:g})"
                )
        out.append(f"{ds}, against {reference} {ref[0]['test_nll']:.4f}: " + "; ".join(parts))
    return out


def exact_log_z_checks(rows: list[dict]) -> list[str]:
    """For every row whose log Z is known exactly and was also estimated: AIS and reverse AIS against
    it (in nats and in the estimate's standard errors), and whether the single-chain bounds (mean log
    weights, forward below and reverse above in expectation) bracket it."""
    out = []
    for r in rows:
        exact, ais = r.get("log_z_grid"), r.get("log_z_ais")
        if exact is None or ais is None:
            continue
        d = ais - exact
        line = f"{r['model']}: AIS - exact = {d:+.3f} nats ({abs(d) / r['log_z_ais_se']:.1f} se)"
        if r.get("log_z_reverse") is not None:
            line += f"; reverse AIS - exact = {r['log_z_reverse'] - exact:+.3f}"
        lo, hi = r.get("log_z_ais_bound"), r.get("log_z_reverse_bound")
        if lo is not None and hi is not None:
            held = "hold" if lo <= exact <= hi else "DO NOT hold"
            line += f"; the single-chain bounds {lo:.3f} <= {exact:.3f} <= {hi:.3f} {held}"
        out.append(line)
    return out
