"""One row per way a model gives log p(x): normalize if needed, NLL with its standard error, units.

    row, per_example_nll, normalized = evaluate_view(name, view, params, x, key, reference=train_x, box=box)

The one place where a view becomes a number every study reports:
- an UNNORMALIZED view is first normalized (`gen_jax.likelihood.normalize`: enumeration, grid, AIS,
  importance sampling, a certain bracket) and its row carries those log Z estimates; its kind becomes
  that of the normalized model (exact for enumeration, estimate otherwise);
- the test NLL and its standard error over examples, combined in quadrature with the standard error
  of log Z when there is one (a constant shared by every example);
- bits/dim when `num_dims` is given (`gen_jax.core.units`), and, for a bracketed log Z, the interval
  the NLL is certain to lie in (up to the test-set noise);
- `trust`: for an AIS-normalized view, "undetermined" when fewer than 10% of the chains carry the
  estimate (ESS), "disagree" when an independent importance-sampling estimate (itself with ESS >= 10%)
  contradicts AIS (`trust_verdict`); either way the headline gives the bracket, not the point.
"""

from __future__ import annotations

import math

import jax
import numpy as np

from gen_jax.core import Kind, Model, nats_to_bits_per_dim
from gen_jax.evaluation.nll import evaluate_nll
from gen_jax.likelihood.normalize import LOG_Z_KEYS, NormalizeConfig, normalize

ESS_TRUST_FRACTION = 0.1
# the single-chain bounds (mean log weights) and reverse AIS, where an estimator gives them
EXTRA_LOG_Z_KEYS = (
    "log_z_ais_bound",
    "log_z_ais_bound_se",
    "log_z_reverse",
    "log_z_reverse_se",
    "log_z_reverse_bound",
    "log_z_reverse_bound_se",
    "log_z_reverse_start",
    "log_z_ais_moves",
    "log_z_learned",
)
UNTRUSTED = ("undetermined", "disagree")  # verdicts under which the headline gives the bracket


def evaluate_view(
    name: str,
    view: Model,
    params,
    x,
    key,
    reference=None,
    box=None,
    normalize_cfg: NormalizeConfig | None = None,
    batch_size: int = 2048,
    num_dims: int | None = None,
    context=None,
    normalize_key=None,
) -> tuple[dict, np.ndarray | None, Model]:
    """(row, per-example NLL, the view as evaluated: normalized if it was not) of one view on data x;
    see the module docstring. `normalize_key`: the key of log Z's estimators (default: a fold of key)."""
    row = {"model": name, "declared_kind": str(view.kind), **dict.fromkeys(LOG_Z_KEYS)}
    if view.kind == Kind.NONE:
        row.update(likelihood_kind=str(Kind.NONE), test_nll=None, test_nll_se=None)
        return row, None, view
    cfg = normalize_cfg or NormalizeConfig()
    if view.kind == Kind.UNNORMALIZED:
        if reference is None:
            raise ValueError(
                f"{name} is unnormalized: evaluating it needs reference (training) data for log Z"
            )
        nkey = jax.random.fold_in(key, 1000) if normalize_key is None else normalize_key
        view, est = normalize(view, params, reference, nkey, box, cfg)
        row.update({k: est.get(k) for k in (*LOG_Z_KEYS, *EXTRA_LOG_Z_KEYS) if k in est or k in LOG_Z_KEYS})
        row["trust"] = _trust(est, cfg)
    nll, se, per = evaluate_nll(view, params, x, key, batch_size=batch_size, context=context)
    if view.log_prob_se:  # an error shared by every example (a log Z) adds in quadrature
        se = math.hypot(se, view.log_prob_se)
    row.update(likelihood_kind=str(view.kind), test_nll=nll, test_nll_se=se, n_eval=int(len(x)))
    if row.get("log_z_bracket") and row.get("log_z_method") != "enumeration":
        raw = nll - float(view.info.get("log_z", 0.0))  # the unnormalized NLL
        row["test_nll_bracket"] = [raw + b for b in row["log_z_bracket"]]
    if num_dims:
        to_bpd = lambda v: float(nats_to_bits_per_dim(v, num_dims))
        row.update(test_bpd=to_bpd(nll), test_bpd_se=to_bpd(se))
        if row.get("test_nll_bracket"):
            row["test_bpd_bracket"] = [to_bpd(v) for v in row["test_nll_bracket"]]
    return row, per, view


def _trust(est: dict, cfg: NormalizeConfig) -> str | None:
    """`trust_verdict` of a normalization's estimates (None when log Z did not come from AIS)."""
    if est.get("log_z_method") != "ais" or est.get("log_z_ais_ess") is None:
        return None
    return trust_verdict(est, cfg.ais.num_chains, cfg.is_samples)


def trust_verdict(est: dict, num_chains: int, num_is_samples: int | None = None) -> str:
    """How far an AIS log Z can be trusted, by checks that can fail:
    - "undetermined": fewer than 10% of the AIS chains carry the estimate (ESS);
    - "disagree": an independent importance-sampling estimate with ESS >= 10% of its samples differs
      from AIS by more than 3 combined standard errors + 0.05 nats (one of the two is wrong);
    - "ess_ok": neither."""
    if est["log_z_ais_ess"] < ESS_TRUST_FRACTION * num_chains:
        return "undetermined"
    is_ess = est.get("log_z_is_ess")
    if is_ess is not None and num_is_samples and is_ess >= ESS_TRUST_FRACTION * num_is_samples:
        se = math.hypot(est.get("log_z_ais_se") or 0.0, est.get("log_z_is_se") or 0.0)
        if abs(est["log_z_ais"] - est["log_z_is"]) > 3.0 * se + 0.05:
            return "disagree"
    return "ess_ok"


def evaluate_views(views, params, x, key, **kwargs) -> list[dict]:
    """`evaluate_view` for each (name, view), each with its own key fold."""
    rows = []
    for i, (name, view) in enumerate(views):
        row, _, _ = evaluate_view(name, view, params, x, jax.random.fold_in(key, i), **kwargs)
        rows.append(row)
    return rows
