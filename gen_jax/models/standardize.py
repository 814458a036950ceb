"""Data-aware standardization inside a vector model: an affine map fitted at init, part of the model.

    model = standardized(make_model("nsf", 6, standardize=None), "diagonal")   # what make_model does

z = A (x - m) with m the example batch's mean and A = diag(1 / s) (per-dimension scales, "diagonal")
or L^-1 with L the Cholesky factor of its covariance ("whiten"). The inner model sees z for
everything (init, loss, log_prob, sample, estimators, capabilities) and

    log p(x) = log p_inner(z) + log |det A|,

so `log_prob` is in the data's own units: a spline's box, a diffusion's noise scale and an energy's
grid all see standardized data, and the model works at any scale and offset of its input (up to
float32's resolution: data whose spread is below ~1e-4 of their offset have lost their digits
before any model sees them, which init warns about). The statistics live in params["standardize"]
(held fixed: `stop_gradient`, and the optimizer leaves them alone); a conditional model's context is
standardized per dimension too (params["context_standardize"], no log-determinant: it is given).
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.core import Model, UpdateGroups
from gen_jax.core.capabilities import (
    ContinuousSpace,
    GaussianTerm,
    LatentVariable,
    LearnedLogZ,
    NormalizedBase,
    ProbabilityFlow,
    ShortRunSampler,
)
from gen_jax.core.model import AuxState

STANDARDIZE_MODES = ("diagonal", "whiten", "none")


def fit_affine(x, mode: str) -> dict:
    """{"shift": m, "scale": s} (diagonal) or {"shift": m, "chol": L} (whiten) from a batch x (n, D)."""
    x = jnp.asarray(x, jnp.float32)
    mean = jnp.mean(x, axis=0)
    _warn_if_unresolved(x, mean)
    if mode == "diagonal":
        return {"shift": mean, "scale": jnp.maximum(jnp.std(x, axis=0), 1e-12 + 1e-7 * jnp.abs(mean))}
    if mode == "whiten":
        d = x.shape[1]
        cov = jnp.cov(x, rowvar=False).reshape(d, d)
        cov = cov + 1e-6 * jnp.mean(jnp.diag(cov)) * jnp.eye(d)
        return {"shift": mean, "chol": jnp.linalg.cholesky(cov)}
    raise ValueError(f"unknown standardize mode {mode!r}; choose one of {STANDARDIZE_MODES}")


def _warn_if_unresolved(x, mean) -> None:
    if isinstance(x, jax.core.Tracer):
        return
    spread, offset = np.asarray(jnp.std(x, axis=0)), np.abs(np.asarray(mean))
    bad = np.nonzero(spread < 1e-4 * offset)[0]
    if bad.size:
        warnings.warn(
            f"{bad.size} data dimension(s) (first: {int(bad[0])}) vary by less than 1e-4 of their offset: "
            "float32 keeps about 7 digits, so their values are coarsely quantized before any model sees "
            "them. Subtract the offset (e.g. x - x.mean(0)) in float64 before training.",
            stacklevel=3,
        )


def forward(stats: dict, x):
    """(z, log |det dz/dx|) for a batch x (n, D)."""
    if "scale" in stats:
        return (x - stats["shift"][None]) / stats["scale"][None], -jnp.sum(jnp.log(stats["scale"]))
    z = jax.scipy.linalg.solve_triangular(stats["chol"], (x - stats["shift"][None]).T, lower=True).T
    return z, -jnp.sum(jnp.log(jnp.diag(stats["chol"])))


def inverse(stats: dict, z):
    """x from z (n, D)."""
    if "scale" in stats:
        return stats["shift"][None] + z * stats["scale"][None]
    return stats["shift"][None] + z @ stats["chol"].T


def _context(params, context):
    if context is None or "context_standardize" not in params:
        return context
    st = jax.lax.stop_gradient(params["context_standardize"])
    return (context - st["shift"][None]) / st["scale"][None]


def _wrap_log_prob(inner_log_prob, conditional: bool):
    def log_prob(params, x, key=None, context=None):
        z, log_det = forward(jax.lax.stop_gradient(params["standardize"]), x)
        if conditional:
            return inner_log_prob(params["model"], z, key, context=_context(params, context)) + log_det
        return inner_log_prob(params["model"], z, key) + log_det

    return log_prob


def _wrap_capability(c):
    """The capability of the standardized model, from the inner model's."""
    stats = lambda params: jax.lax.stop_gradient(params["standardize"])
    if isinstance(c, ContinuousSpace):

        def to_continuous(params, x, key):
            z, log_det = forward(stats(params), x)
            y, inner = c.to_continuous(params["model"], z, key)
            return y, inner + log_det

        return ContinuousSpace(
            to_continuous, lambda params, y, sigma=None: c.log_density(params["model"], y, sigma)
        )
    if isinstance(c, GaussianTerm):
        return GaussianTerm(lambda params, sigma=None: c.moments(params["model"], sigma))
    if isinstance(c, LatentVariable):

        def log_weights(params, x, key, k, proposal="posterior", chunk=None):
            z, log_det = forward(stats(params), x)
            return c.log_weights(params["model"], z, key, k, proposal, chunk) + log_det

        return LatentVariable(c.latent_dim, log_weights)
    if isinstance(c, ProbabilityFlow):

        def log_prob_and_nfe(params, x, key, cfg, context=None):
            z, log_det = forward(stats(params), x)
            extra = {} if context is None else {"context": _context(params, context)}
            lp, nfe = c.log_prob_and_nfe(params["model"], z, key, cfg, **extra)
            return lp + log_det, nfe

        def sample(params, key, n, cfg):
            return inverse(stats(params), c.sample(params["model"], key, n, cfg))

        return ProbabilityFlow(log_prob_and_nfe, sample, c.config, c.process)
    if isinstance(c, NormalizedBase):  # the base and its correction live in the inner space, as y does
        return NormalizedBase(
            lambda params, key, n: c.sample(params["model"], key, n),
            lambda params, y: c.log_prob(params["model"], y),
            lambda params, y: c.log_correction(params["model"], y),
            None if c.from_latent is None else lambda params, z: c.from_latent(params["model"], z),
        )
    if isinstance(c, LearnedLogZ):  # log Z is the same in both spaces (log_prob carries the log-det)
        return LearnedLogZ(lambda params: c.read(params["model"]))
    if isinstance(c, ShortRunSampler):
        return ShortRunSampler(
            lambda params, key, n, steps: inverse(stats(params), c.sample(params["model"], key, n, steps)),
            c.train_steps,
        )
    return c  # NoisePath, BoundedCorrection, ...: statements about the inner space, unchanged


def standardized(model: Model, mode: str = "diagonal") -> Model:
    """`model` on standardized inputs (see the module docstring); mode "none" returns it unchanged."""
    if mode in (None, "none"):
        return model
    if mode not in STANDARDIZE_MODES:
        raise ValueError(f"unknown standardize mode {mode!r}; choose one of {STANDARDIZE_MODES}")
    if len(model.event_shape) != 1:
        raise ValueError(f"standardize applies to vector models; {model.name} takes {model.event_shape}")
    conditional = model.context_shape is not None

    def split(batch):
        return (batch["x"], batch["context"]) if isinstance(batch, dict) else (batch, None)

    def init(key, batch):
        x, c = split(batch)
        params = {"standardize": fit_affine(x, mode)}
        z, _ = forward(params["standardize"], jnp.asarray(x, jnp.float32))
        inner_batch = z
        if c is not None:
            params["context_standardize"] = fit_affine(c, "diagonal")
            inner_batch = {"x": z, "context": _context(params, jnp.asarray(c, jnp.float32))}
        params["model"] = model.init(key, inner_batch)
        return params

    def loss(params, batch, key, *state):
        x, c = split(batch)
        z, log_det = forward(jax.lax.stop_gradient(params["standardize"]), x)
        inner_batch = z if c is None else {"x": z, "context": _context(params, c)}
        out = model.loss(params["model"], inner_batch, key, *state)
        if "nll" in out[1]:  # maximum likelihood: report the NLL in the data's units
            out = (out[0], {**out[1], "nll": out[1]["nll"] - log_det})
        return out

    def sample(params, key, n, context=None):
        extra = {} if context is None else {"context": _context(params, context)}
        return inverse(
            jax.lax.stop_gradient(params["standardize"]), model.sample(params["model"], key, n, **extra)
        )

    estimators = {
        name: est.__class__(est.kind, _wrap_log_prob(est.log_prob, conditional), est.grid_n)
        for name, est in model.estimators.items()
    }
    aux, inner_aux = None, model.aux_state
    if inner_aux is not None:  # state carried between steps (persistent chains) lives in the inner space

        def aux_init(key, params, batch):
            z, _ = forward(params["standardize"], jnp.asarray(split(batch)[0], jnp.float32))
            return inner_aux.init(key, params["model"], z)

        aux = AuxState(aux_init)
    groups = model.update_groups
    if groups is not None:
        inner_labels = groups.labels

        def labels(params):
            out = {k: jax.tree_util.tree_map(lambda _: groups.schedule[0], v) for k, v in params.items()}
            out["model"] = inner_labels(params["model"])
            return out

        groups = UpdateGroups(labels, groups.schedule)
    return model.replace(
        init=init,
        loss=loss,
        log_prob=_wrap_log_prob(model.log_prob, conditional),
        sample=sample,
        estimators=estimators,
        capabilities=tuple(_wrap_capability(c) for c in model.capabilities),
        update_groups=groups,
        aux_state=aux,
        info={**model.info, "standardize": mode},
        internals={**model.internals, "inner": model},
    )
