"""Views of a model: every way it gives log p(x), its own and the ones built from its capabilities.

    views = model_views(model, ["iw:k=16", "ode:rtol=1e-4,atol=1e-4"])
    # [("glow", model), ("glow/iw16", view)], each view a Model whose log_prob is that estimator

`model.views()` are the model's own log_prob and estimators. Each spec adds one view from a
capability, whatever the family (an error names the capability a model lacks):

- "iw:k=K": importance-weighted dequantization of the model's log_prob (`Dequantized`), an estimate
  rising toward the discrete log P(x) with K (`gen_jax.likelihood.dequantization`);
- "ode:rtol=R,atol=A[,solver=S,probe=P]": the probability-flow ODE at that tolerance (`ProbabilityFlow`);
- "ode_iw:k=K[,rtol=R,atol=A]": K dequantization draws of that ODE, importance-weighted;
- "iwae:k=K", "prior:k=K": latent-variable importance sampling from the posterior or the prior
  (`LatentVariable`);
- "bound:samples=N": the model's Monte Carlo bound with N inner draws per example (`MonteCarloBound`).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from gen_jax.core import ConfigError, Kind, Model
from gen_jax.core.capabilities import Dequantized, LatentVariable, MonteCarloBound, ProbabilityFlow
from gen_jax.likelihood.dequantization import iw_dequantized


def parse_spec(spec: str) -> tuple[str, dict]:
    """ "name:a=1,b=x" -> ("name", {"a": 1, "b": "x"}) (ints and floats converted)."""
    name, _, rest = spec.partition(":")
    args = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(f"estimator spec {spec!r}: {item!r} is not key=value")
        for convert in (int, float):
            try:
                value = convert(value)
                break
            except ValueError:
                continue
        args[key.strip()] = value
    return name.strip(), args


def _need(model: Model, capability, spec: str):
    c = model.get(capability)
    if c is None:
        raise ConfigError(
            f"{model.name} has no {capability.__name__} capability, so estimator {spec!r} does not apply"
        )
    return c


def _ode_config(flow: ProbabilityFlow, args: dict):
    fields = {f.name for f in dataclasses.fields(flow.config)}
    unknown = set(args) - fields - {"k"}
    if unknown:
        raise ConfigError(f"ODE estimator: unknown settings {sorted(unknown)}; valid: {sorted(fields)}")
    return dataclasses.replace(flow.config, **{k: v for k, v in args.items() if k in fields})


def _tol_name(cfg) -> str:
    return f"tol{cfg.rtol:g}" if cfg.rtol == cfg.atol else f"rtol{cfg.rtol:g}_atol{cfg.atol:g}"


def spec_view(model: Model, spec: str) -> tuple[str, Model]:
    """(row name, view) of one estimator spec (see the module docstring)."""
    kind, args = parse_spec(spec)
    if kind == "iw":
        _need(model, Dequantized, spec)
        k = int(args.get("k", 16))
        return f"{model.name}/iw{k}", model.replace(
            kind=Kind.ESTIMATE, log_prob=iw_dequantized(model.log_prob, k), estimators={}
        )
    if kind in ("ode", "ode_iw"):
        flow = _need(model, ProbabilityFlow, spec)
        cfg = _ode_config(flow, args)
        lp = lambda params, x, key, **kw: flow.log_prob_and_nfe(params, x, key, cfg, **kw)[0]
        exact = cfg.divergence == "exact" and model.get(Dequantized) is None
        name = f"{model.name}/ode_{_tol_name(cfg)}"
        if kind == "ode_iw":
            k = int(args.get("k", 4))
            lp, exact, name = iw_dequantized(lp, k), False, f"{name}_iw{k}"
        return name, model.replace(kind=Kind.EXACT if exact else Kind.ESTIMATE, log_prob=lp, estimators={})
    if kind in ("iwae", "prior"):
        latent = _need(model, LatentVariable, spec)
        k = int(args.get("k", 1000))
        proposal = "posterior" if kind == "iwae" else "prior"
        chunk = int(args.get("chunk", min(k, 100)))

        def lp(params, x, key=None):
            lw = latent.log_weights(params, x, key, k, proposal, chunk)
            return jax.nn.logsumexp(lw, axis=-1) - jnp.log(float(k))

        return f"{model.name}/{kind}{k}", model.replace(kind=Kind.ESTIMATE, log_prob=lp, estimators={})
    if kind == "bound":
        mc = _need(model, MonteCarloBound, spec)
        n = int(args.get("samples", 1024))
        lp = lambda params, x, key, **kw: mc.log_prob_with(params, x, key, n, **kw)
        return f"{model.name}/bound{n}", model.replace(log_prob=lp, estimators={})
    raise ConfigError(f"unknown estimator {kind!r} in {spec!r}; choose iw, ode, ode_iw, iwae, prior or bound")


def model_views(model: Model, specs=()) -> list[tuple[str, Model]]:
    """The model's own views, then one per estimator spec."""
    return model.views() + [spec_view(model, s) for s in specs]
