"""Parzen-window "log-likelihoods" beside the truth, on data whose true density is known.

For every fitted model on a dataset, and for "the training set itself" (samples = training
points, i.e. a model that memorises its data and has no density: true NLL +inf), this reports:

- the Parzen estimate of the test NLL from N samples (`gen_jax.likelihood.parzen`, bandwidth
  chosen on held-out training points that are never kernel centres),
- the model's own test NLL where it has one (the tightest of its views: exact, bound or
  estimate), and the true entropy H(p) of the data (the floor of every expected NLL),
- the rank of each entry by Parzen and by its true NLL, and the pairs whose Parzen order is
  the reverse of their true order (both differences beyond two standard errors),
- the sample MMD to test data (`gen_jax.metrics.mmd`) as a sample-quality axis, and, for data
  made of separate modes, the share of samples nearest each mode.

Everything goes through the Model surface (`model.sample`, `model.kind`); no family is special.
Only exact NLLs (and the +inf of a singular distribution) count as the truth a reversal is judged
against: a lower bound or an estimate does not order two models. Used by the toy2d and contrast
studies; `write` produces `parzen.json` and `parzen.md` beside their results.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np

from gen_jax.core import Kind, Model
from gen_jax.data.toy2d import MODE_CENTERS
from gen_jax.evaluation.tables import machine_description, markdown_table
from gen_jax.evaluation.vector import VectorData
from gen_jax.likelihood.parzen import parzen_estimate, parzen_log_prob
from gen_jax.metrics import mmd, mode_fractions

TRAINING_SET = "training set itself"
SINGULAR = "singular"  # true NLL +inf: point masses / a lower-dimensional support, no density

KEYS = (
    "dataset",
    "model",
    "true_nll_kind",
    "true_nll",
    "true_nll_se",
    "true_entropy",
    "parzen_nll",
    "parzen_se",
    "bandwidth",
    "num_samples",
    "rank_parzen",
    "rank_true",
    "reversed_against",
    "mmd",
    "mode_min",
    "mode_max",
)
COLUMNS = [
    ("dataset", "dataset"),
    ("model", "model"),
    ("true_nll_kind", "its NLL is"),
    ("true_nll_str", "true NLL"),
    ("true_entropy", "H(p)"),
    ("parzen_nll", "Parzen NLL"),
    ("parzen_se", "± se"),
    ("bandwidth", "h"),
    ("rank_parzen", "rank (Parzen)"),
    ("rank_true", "rank (truth)"),
    ("reversed_str", "Parzen reverses the truth against"),
    ("mmd", "MMD²"),
    ("modes_str", "mode share min-max"),
]


@dataclasses.dataclass
class Entry:
    """Something that gives samples, with what is known of its true test NLL.

    true_nll: mean test NLL (nats), math.inf for a singular distribution, None when unknown.
    true_nll_kind: the kind of that number ("exact", "lower_bound", "estimate", "singular",
    "none").
    """

    name: str
    samples: np.ndarray
    true_nll: float | None
    true_nll_se: float | None
    true_nll_kind: str


def best_view(rows: Sequence[dict]) -> dict | None:
    """The view row with the lowest test NLL among the views that give a normalized number."""
    usable = [
        r
        for r in rows
        if r.get("test_nll") is not None
        and r["likelihood_kind"] not in (str(Kind.NONE), str(Kind.UNNORMALIZED))
    ]
    return min(usable, key=lambda r: r["test_nll"]) if usable else None


def model_entry(model: Model, params, rows: Sequence[dict], key: jax.Array, num_samples: int) -> Entry:
    """An Entry from a fitted model: `num_samples` fresh samples and its best view's test NLL."""
    samples = np.asarray(jax.jit(model.sample, static_argnums=2)(params, key, num_samples))
    row = best_view(rows)
    if row is None:
        return Entry(model.name, samples, None, None, str(Kind.NONE))
    name = model.name if row["model"] == model.name else row["model"]
    return Entry(name, samples, row["test_nll"], row["test_nll_se"], row["likelihood_kind"])


def rows_entry(rows: Sequence[dict], name: str) -> Entry:
    """An Entry from the rows of one fitted model (`gen_jax.evaluation.fit`): their samples and the
    best normalized view's test NLL."""
    samples = np.asarray(rows[0]["samples"])
    row = best_view(rows)
    if row is None:
        return Entry(name, samples, None, None, str(Kind.NONE))
    return Entry(row["model"], samples, row["test_nll"], row["test_nll_se"], row["likelihood_kind"])


def training_set_entry(data: VectorData, num_samples: int, n_val: int) -> Entry:
    """The training points themselves as "samples": the empirical distribution, which has no
    density (point masses), so its true NLL on any new point is +inf. The last `n_val` training
    points are kept out (they choose the bandwidth)."""
    samples = np.asarray(data.train[: min(num_samples, len(data.train) - n_val)])
    return Entry(TRAINING_SET, samples, math.inf, None, SINGULAR)


def validation_split(data: VectorData, num_samples: int, n_val: int) -> np.ndarray:
    """Held-out points for the bandwidth: the last `n_val` training points, never among the
    first `num_samples` (the training-set entry's kernel centres)."""
    if len(data.train) < num_samples + n_val:
        raise ValueError(
            f"{data.name}: {len(data.train)} training points cannot give {num_samples} kernel centres and "
            f"{n_val} disjoint validation points; lower parzen_samples / parzen_val or add data"
        )
    return np.asarray(data.train[-n_val:])


def compare(data: VectorData, entries: Sequence[Entry], n_val: int = 2000, n_mmd: int = 5000) -> list[dict]:
    """Parzen estimate, ranks, reversed pairs, MMD and mode shares of every entry on `data.test`."""
    num = min(len(e.samples) for e in entries)
    val = validation_split(data, num, n_val)
    test = np.asarray(data.test)
    centers = MODE_CENTERS.get(data.name)
    rows, per_example = [], []
    for e in entries:
        samples = np.asarray(e.samples[:num], np.float32)
        pz = parzen_estimate(samples, val, test)
        per_example.append(-np.asarray(parzen_log_prob(samples, pz.bandwidth)(test), np.float64))
        fractions = mode_fractions(samples, centers) if centers is not None else None
        rows.append(
            dict(
                dataset=data.name,
                model=e.name,
                true_nll_kind=e.true_nll_kind,
                true_nll=e.true_nll,
                true_nll_se=e.true_nll_se,
                true_entropy=data.true_entropy,
                parzen_nll=pz.nll,
                parzen_se=pz.nll_se,
                bandwidth=pz.bandwidth,
                num_samples=num,
                mmd=mmd(samples[:n_mmd], test[:n_mmd]),
                mode_min=None if fractions is None else float(fractions.min()),
                mode_max=None if fractions is None else float(fractions.max()),
            )
        )
    rank_rows(rows, "parzen_nll", "rank_parzen")
    rank_rows(rows, "true_nll", "rank_true")
    for i, a in enumerate(rows):
        a["reversed_against"] = [
            b["model"]
            for j, b in enumerate(rows)
            if j != i and is_reversed(a, b, per_example[i], per_example[j])
        ]
    return rows


def rank_rows(rows: list[dict], key: str, out: str) -> None:
    """rows[i][out] = rank (1 = lowest) of rows[i][key] among the rows where it is known, else None."""
    known = sorted((r[key], i) for i, r in enumerate(rows) if r[key] is not None)
    for r in rows:
        r[out] = None
    for rank, (_, i) in enumerate(known, start=1):
        rows[i][out] = rank


def is_reversed(a: dict, b: dict, nll_a: np.ndarray, nll_b: np.ndarray) -> bool:
    """Parzen orders a and b one way, their true NLLs the other, both beyond 2 standard errors.

    The Parzen difference's error is paired (same test points); the true difference's is
    unpaired (conservative). Only exact NLLs and singular (+inf) ones count as the truth; a
    bound does not order two models.
    """
    truth_kinds = (str(Kind.EXACT), SINGULAR)
    if a["true_nll_kind"] not in truth_kinds or b["true_nll_kind"] not in truth_kinds:
        return False
    d_true = (
        a["true_nll"] - b["true_nll"]
        if not (math.isinf(a["true_nll"]) and math.isinf(b["true_nll"]))
        else 0.0
    )
    se_true = math.hypot(a["true_nll_se"] or 0.0, b["true_nll_se"] or 0.0)
    diff = nll_a - nll_b
    d_parzen = float(diff.mean())
    se_parzen = float(diff.std(ddof=1) / math.sqrt(len(diff)))
    return abs(d_true) > 2 * se_true and abs(d_parzen) > 2 * se_parzen and (d_true > 0) != (d_parzen > 0)


# ----------------------------------------------------------------------------- output


def _display(r: dict) -> dict:
    t = r["true_nll"]
    if t is None:
        true_str = "none (no density)" if r["true_nll_kind"] == str(Kind.NONE) else "-"
    elif math.isinf(t):
        true_str = "+inf (no density)"
    else:
        se = f" ± {r['true_nll_se']:.3f}" if r["true_nll_se"] is not None else ""
        true_str = f"{t:.3f}{se}" + (" (bound)" if r["true_nll_kind"] == str(Kind.LOWER_BOUND) else "")
    modes = None if r["mode_min"] is None else f"{100 * r['mode_min']:.1f}%-{100 * r['mode_max']:.1f}%"
    return {
        **r,
        "true_nll_str": true_str,
        "reversed_str": ", ".join(r["reversed_against"]) or "-",
        "modes_str": modes,
    }


def markdown(rows: Sequence[dict]) -> str:
    """The Parzen table with its explanation and the reversed pairs."""
    head = (
        "Parzen-window estimates of the test NLL (nats) from N model samples, beside each model's own "
        "test NLL (the tightest of its views; 'bound' marks an upper bound on the NLL) and the true "
        "entropy H(p) of the data, the floor of any expected NLL. The bandwidth h maximises the "
        "likelihood of held-out training points that are never kernel centres. 'The training set "
        "itself' uses N training points as samples: a model that memorises its data has no density "
        "(true NLL +inf), yet Parzen scores it about as well as perfect samples. A reversal is a pair "
        "whose Parzen order is the opposite of their true order, both differences beyond 2 standard "
        "errors (only exact and +inf NLLs count as truth). MMD² is the squared sample MMD to the test "
        "data (Gaussian kernels, 5 bandwidths around the median distance); mode share is the fraction "
        "of samples nearest each mode (min-max over modes).\n"
        f"Machine: {machine_description()}.\n\n"
    )
    body = markdown_table(
        [_display(r) for r in rows],
        COLUMNS,
        digits={"bandwidth": 3, "mmd": 5, "parzen_se": 3},
    )
    pairs = sorted(
        {(r["dataset"], *sorted((r["model"], other))) for r in rows for other in r["reversed_against"]}
    )
    lines = [
        f"- {ds}: Parzen ranks **{a}** and **{b}** in the opposite order to their true NLL"
        for ds, a, b in pairs
    ]
    tail = "\nReversed pairs:\n" + ("\n".join(lines) if lines else "- none") + "\n"
    return head + body + tail


def write(out_dir: Path, rows: Sequence[dict], name: str = "parzen") -> None:
    """`parzen.json` (rows restricted to KEYS) and `parzen.md`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    clean = [{k: jsonable(r.get(k)) for k in KEYS} for r in rows]
    (out_dir / f"{name}.json").write_text(json.dumps(clean, indent=1) + "\n")
    (out_dir / f"{name}.md").write_text(markdown(rows))


def jsonable(v):
    """JSON values for the Parzen rows (+inf NLLs as the string "inf")."""
    if isinstance(v, (np.floating, np.integer)):
        v = v.item()
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if isinstance(v, float) and math.isnan(v):
        return None
    return v
