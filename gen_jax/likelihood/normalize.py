"""From an unnormalized model to a number comparable with everyone else's: estimate log Z.

    model_n, est = normalize(model, params, train_x, key, box=data.box)
    # model_n.kind is ESTIMATE (AIS), or EXACT (enumeration); model_n.log_prob_se is the log Z se
    # est: LOG_Z_KEYS (grid / enumeration, AIS with se and ESS, importance sampling, the bracket)

Dispatches only on the model's kind and capabilities, never on its family:
- every `Kind.UNNORMALIZED` model gets a forward AIS estimate (`gen_jax.likelihood.ais`) of the
  integral of its density in the space that density is written in (`ContinuousSpace`; the data
  space otherwise). A model on a normalized base (`NormalizedBase`, a flow): chains start from the
  base's exact samples and anneal q^(1 - b) (q e^-c)^b = q e^(-b c) (in the data's space, or with
  `flow_coordinates="latent"` in the flow's latent z, where q is N(0, I)). Real support otherwise: chains
  in the coordinates that whiten a Gaussian: the model's own
  (`GaussianTerm`: y = m + U (s * w)), else the reference's mean and per-coordinate scale (one
  scale for all pixels of an image), from N(0, base_scale^2 I), with MALA/HMC moves. A model with a
  `NoisePath` may be annealed along it instead (`AISConfig.path`). `BinarySupport`: an
  independent-Bernoulli base and Gibbs moves.
- importance sampling (`is_samples` > 0): log Z = log E_r[p~(y) / r(y)] with r the model's base or
  own Gaussian (or the whitening Gaussian above, widened by base_scale): an estimator independent of
  AIS (no Markov chain), reported with its ESS, to hold AIS against;
- a model that learned its own log Z (`LearnedLogZ`, noise-contrastive estimation) has it reported
  as `log_z_learned` beside the estimates (a claim to check, never the normalizer);
- 2D real models also get the grid (midpoint rule over the data box widened by `grid_widen` of its
  width on each side), and binary vectors of <= 20 bits the exact sum over every state; both are
  `log_z_grid`; a `BoundedCorrection` gives the certain bracket `log_z_bracket`.
A model with its own `PartitionFunction` (an RBM, a closed form) is normalized by that alone: its
exact log Z when it has one, else its AIS, with its reverse AIS beside it.
The log Z that normalizes the model is the enumeration when there is one, else `use` ("ais" by
default; "grid" where a grid exists; "is"). Other kinds pass through unchanged.

log Z is the same in the data space and the model's continuous space: log_prob(x) includes
log |dy/dx|, so the integral of exp(log_prob) over x equals the integral of p~ over y.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.core import Kind, Model
from gen_jax.core.capabilities import (
    BinarySupport,
    BoundedCorrection,
    ContinuousSpace,
    GaussianTerm,
    LearnedLogZ,
    NoisePath,
    NormalizedBase,
    PartitionFunction,
)
from gen_jax.likelihood.ais import (
    AISConfig,
    AISResult,
    ais,
    interpolate_step_sizes,
    log_mean_exp_se,
    pilot_key,
)
from gen_jax.likelihood.enumerate import MAX_BITS, enumerate_log_z
from gen_jax.likelihood.grid import log_integrate_2d, widened
from gen_jax.sampling.anneal import (
    AnnealingPath,
    Base,
    adapt_step_sizes,
    as_transition,
    bernoulli_base,
    gaussian_base,
    geometric_path,
    noise_path,
    schedule,
    tempered_path,
)

LOG_Z_KEYS = (
    "log_z_grid",
    "log_z_ais",
    "log_z_ais_se",
    "log_z_ais_ess",
    "log_z_is",
    "log_z_is_se",
    "log_z_is_ess",
    "log_z_bracket",
    "log_z_method",
)
USES = ("ais", "grid", "is")


@dataclasses.dataclass(frozen=True)
class NormalizeConfig:
    """How unnormalized models get their log Z (see the module docstring)."""

    ais: AISConfig = AISConfig()
    use: str = "ais"  # which estimate normalizes when there is no enumeration: "ais", "grid" or "is"
    grid_n: int = 800  # cells a side of the widened 2D box
    grid_widen: float = 1.0  # widen the data box by this fraction of its width on each side
    base_scale: float = 1.5  # AIS / IS Gaussian: reference mean, base_scale x reference scale
    is_samples: int = 0  # importance-sampling estimate with this many samples (0: none)
    is_chunk: int = 1000  # samples per evaluation call

    def __post_init__(self):
        if self.use not in USES:
            raise ValueError(f"NormalizeConfig.use must be one of {USES}, got {self.use!r}")
        if self.is_samples < 0 or self.is_chunk < 1:
            raise ValueError("NormalizeConfig: need is_samples >= 0 and is_chunk >= 1")


def with_log_z(
    model: Model, log_z: float, se: float | None = None, kind: Kind = Kind.ESTIMATE, method: str = "ais"
) -> Model:
    """The unnormalized `model` divided by exp(log_z): log_prob - log_z, declaring `kind` (ESTIMATE
    for a stochastic estimate, EXACT for enumeration) and carrying `se` as `log_prob_se`."""
    if model.kind != Kind.UNNORMALIZED:
        raise ValueError(f"{model.name} is already {model.kind}; with_log_z takes an unnormalized model")
    inner = model.log_prob
    log_z = float(log_z)

    def log_prob(params, x, key=None):
        return inner(params, x, key) - log_z

    info = {**model.info, "log_z": log_z, "log_z_se": se, "log_z_method": method}
    return model.replace(kind=kind, log_prob=log_prob, log_prob_se=se, info=info, estimators={})


# ----------------------------------------------------------------------------- the target of AIS / IS


@dataclasses.dataclass(frozen=True)
class Whitened:
    """A target written in coordinates w with y = to_y(w) = mean + U (scale * w) (U None: identity),
    log |dy/dw| = shift; `log_density(w)` and, for a noise path, `at(w, sigma)`."""

    log_density: object
    to_y: object
    shift: float
    base: Base
    at: object = None
    transition: str = "mala"
    correction: object = None  # log_density - base.log_prob, when the base is the model's own term


def _reference_scale(reference: np.ndarray) -> np.ndarray:
    """Per coordinate for vectors; ONE scale for all pixels of images (an energy model's density need
    not follow the data's per-pixel spread; a per-pixel base gave a looser AIS bound)."""
    if reference.ndim == 2:
        return reference.std(0)
    return np.broadcast_to(reference.std(), reference.shape[1:])


def target(model: Model, params, reference, key, cfg: NormalizeConfig) -> Whitened:
    """The model's unnormalized density in whitened coordinates, with the base AIS starts from."""
    space = model.get(ContinuousSpace)
    path = model.get(NoisePath)
    use_noise = path is not None and cfg.ais.path in ("auto", "noise")
    if model.get(BinarySupport) is not None or space is None:
        data_log_f = lambda x: model.log_prob(params, x[None], key)[0]
        if model.get(BinarySupport) is not None:
            base = bernoulli_base(np.asarray(reference, np.float32).mean(0))
            return Whitened(data_log_f, lambda x: x, 0.0, base, transition="gibbs")
        identity = lambda p, x, k: (x, jnp.zeros(x.shape[:1]))
        space = ContinuousSpace(identity, lambda p, y, sigma=None: data_log_f(y))
    flow = model.get(NormalizedBase)
    if flow is not None and flow.from_latent is not None and cfg.ais.flow_coordinates == "latent":
        # y = g(z): p~(g(z)) |dg/dz| = N(z; 0, I) exp(c(g(z))): the log-det cancels against q's
        to_y = lambda z: flow.from_latent(params, z)
        base = gaussian_base(jnp.zeros(model.num_dims), 1.0)
        tempered = lambda z: flow.log_correction(params, to_y(z))
        log_f = lambda z: base.log_prob(z) + tempered(z)
        return Whitened(log_f, to_y, 0.0, base, None, cfg.ais.transition, tempered)
    if flow is not None:  # AIS from the base itself, which importance sampling draws from
        log_q = lambda y: flow.log_prob(params, y[None])[0]
        base = Base(log_q, lambda k, n: flow.sample(params, k, n), "flow")
        log_f = lambda y: space.log_density(params, y)
        tempered = lambda y: flow.log_correction(params, y)
        return Whitened(log_f, lambda y: y, 0.0, base, None, cfg.ais.transition, tempered)
    gauss = model.get(GaussianTerm)
    if gauss is not None:
        return _in_model_gaussian(model, params, space, gauss, path, cfg)
    y_ref = space.to_continuous(params, jnp.asarray(reference), jax.random.fold_in(key, 3))[0]
    y_ref = np.asarray(y_ref, np.float32)
    mean = jnp.asarray(y_ref.mean(0))
    scale = jnp.asarray(_reference_scale(y_ref), jnp.float32)
    to_y = lambda w: mean + scale * w
    base = gaussian_base(jnp.zeros_like(mean), cfg.base_scale)
    at = None
    if use_noise:  # the reference smoothed at sigma_max, in whitened units
        base = gaussian_base(jnp.zeros_like(mean), jnp.sqrt(1.0 + (path.sigma_max / scale) ** 2))
        at = lambda w, sigma: space.log_density(params, to_y(w), sigma)
    shift = float(np.sum(np.log(np.asarray(scale, np.float64))))
    log_f = lambda w: space.log_density(params, to_y(w))
    return Whitened(log_f, to_y, shift, base, at, cfg.ais.transition)


def _in_model_gaussian(model, params, space, gauss, path, cfg) -> Whitened:
    """Coordinates that whiten the model's own Gaussian at the smallest noise level: that term is
    exactly N(0, I) in w and the chains only absorb the correction. The noise path (path="noise")
    starts from the Gaussian at sigma_max, N(0, diag(s_max^2 / s^2))."""
    sigma_min = path.sigma_min if path is not None else None
    mean, evecs, scales = gauss.moments(params, sigma_min)
    shape = model.event_shape

    def to_y(w):
        return (mean + evecs @ (scales * w.reshape(-1))).reshape(shape)

    base, at = gaussian_base(jnp.zeros(mean.shape), 1.0), None
    if path is not None and cfg.ais.path == "noise":
        base = gaussian_base(jnp.zeros(mean.shape), gauss.moments(params, path.sigma_max)[2] / scales)
        at = lambda w, sigma: space.log_density(params, to_y(w), sigma)
    shift = float(np.sum(np.log(np.asarray(scales, np.float64))))
    log_f = lambda w: space.log_density(params, to_y(w), sigma_min)
    return Whitened(log_f, to_y, shift, base, at, cfg.ais.transition)


def _ais_path(model: Model, t: Whitened, cfg: NormalizeConfig, num_temps: int) -> AnnealingPath:
    """The path AIS anneals along at `num_temps` temperatures: the model's noise path, the base times
    its tempered correction (the base evaluated once), else the geometric path from the base."""
    a = cfg.ais
    if t.at is not None:
        p = model.get(NoisePath)
        return noise_path(t.at, t.base, p.sigma_max, p.sigma_min, num_temps, a.bridge_fraction, a.schedule)
    if t.correction is not None:  # base x correction^b: the same path, the base evaluated once
        return tempered_path(t.base, t.correction, schedule(num_temps, a.schedule))
    return geometric_path(t.log_density, t.base, schedule(num_temps, a.schedule))


def pilot_step_sizes(
    model: Model, params, reference, key, cfg: NormalizeConfig = NormalizeConfig()
) -> np.ndarray | None:
    """The step sizes of the pilot on `cfg.ais.pilot_temps` temperatures (the pilot `ais_log_z` runs
    with the same key), or None when the pilot runs at every temperature of each run
    (pilot_temps = 0). A ladder of runs passes them to each `ais_log_z` (`step_sizes`): one pilot."""
    if not cfg.ais.pilot_temps:
        return None
    return _pilot(model, target(model, params, reference, key, cfg), key, cfg)


def _pilot(model: Model, t: Whitened, key, cfg: NormalizeConfig) -> np.ndarray:
    """The pilot's step sizes on cfg.ais.pilot_temps temperatures of the target's path."""
    a = cfg.ais
    path = _ais_path(model, t, cfg, a.pilot_temps)
    transition = as_transition(t.transition)
    tune = jax.jit(lambda k: adapt_step_sizes(path, k, transition, a.num_pilot))
    return np.asarray(tune(pilot_key(jax.random.fold_in(key, a.seed))))


def ais_log_z(
    model: Model,
    params,
    reference,
    key,
    cfg: NormalizeConfig = NormalizeConfig(),
    num_temps=None,
    step_sizes=None,
) -> AISResult:
    """Forward AIS estimate of the model's log Z (`num_temps` overrides cfg.ais.num_temps): AIS in
    whitened coordinates, mapped back (log Z + log |dy/dw|, chain positions in y). `step_sizes`: a
    pilot's (`pilot_step_sizes`, any ladder length), interpolated to this run's temperatures; None:
    the pilot of cfg.ais.pilot_temps temperatures, or one at every temperature."""
    a = cfg.ais
    t = target(model, params, reference, key, cfg)
    k = num_temps or a.num_temps
    if step_sizes is None and 0 < a.pilot_temps < k:
        step_sizes = _pilot(model, t, key, cfg)
    res = ais(
        t.log_density,
        t.base,
        jax.random.fold_in(key, a.seed),
        a.num_chains,
        k,
        t.transition,
        a.steps_per_temp,
        a.schedule,
        a.num_pilot,
        step_sizes=None if step_sizes is None else interpolate_step_sizes(step_sizes, k),
        path=_ais_path(model, t, cfg, k),
    )
    return dataclasses.replace(
        res,
        log_z=res.log_z + t.shift,
        log_weights=res.log_weights + t.shift,
        positions=jax.vmap(t.to_y)(res.positions),
    )


def importance_log_z(
    model: Model, params, reference, key, num_samples: int, cfg: NormalizeConfig = NormalizeConfig()
) -> dict:
    """log Z = log mean_j p~(y_j) / r(y_j), y_j ~ r, the whitened base of `target` (the model's own
    Gaussian when it has one, exactly the Gaussian term; else the reference's, widened): unbiased for
    Z, no Markov chain. Returns {"log_z", "se" (delta method), "ess", "num_samples"}."""
    t = target(model, params, reference, key, cfg)
    if t.transition == "gibbs":
        raise ValueError("importance_log_z takes real-valued models; binary ones have AIS with Gibbs moves")
    chunk = min(cfg.is_chunk, num_samples)

    @jax.jit
    def log_weights(k):
        w = t.base.sample(k, chunk)
        return jax.vmap(lambda w: t.log_density(w) - t.base.log_prob(w))(w)

    lw = [np.asarray(log_weights(jax.random.fold_in(key, i))) for i in range(-(-num_samples // chunk))]
    lw = np.concatenate(lw)[:num_samples] + t.shift
    log_z, se, ess = log_mean_exp_se(lw)
    return {"log_z": log_z, "se": se, "ess": ess, "num_samples": int(num_samples)}


def estimate_log_z(
    model: Model, params, reference, key, box=None, cfg: NormalizeConfig = NormalizeConfig()
) -> dict:
    """log Z of an unnormalized model by every method that applies (see the module docstring)."""
    reference = np.asarray(reference, np.float32)
    own = model.get(PartitionFunction)
    if own is not None:
        return own_log_z(own, params, reference, key, cfg)
    out = dict.fromkeys(LOG_Z_KEYS)
    batched = jax.jit(lambda x: model.log_prob(params, x, key))
    if model.get(BinarySupport) is not None and model.num_dims <= MAX_BITS:
        out["log_z_grid"] = enumerate_log_z(batched, model.num_dims)
    elif model.event_shape == (2,) and box is not None:
        out["log_z_grid"] = log_integrate_2d(batched, widened(box, cfg.grid_widen), cfg.grid_n)
    res = ais_log_z(model, params, reference, key, cfg)
    out.update(log_z_ais=res.log_z, log_z_ais_se=res.log_z_se, log_z_ais_ess=res.ess)
    # the single-chain stochastic lower bound (mean log weight), for the bidirectional sandwich
    out.update(log_z_ais_bound=res.log_z_bound, log_z_ais_bound_se=res.log_z_bound_se)
    if cfg.is_samples:
        imp = importance_log_z(model, params, reference, jax.random.fold_in(key, 17), cfg.is_samples, cfg)
        out.update(log_z_is=imp["log_z"], log_z_is_se=imp["se"], log_z_is_ess=imp["ess"])
    bounded = model.get(BoundedCorrection)
    if bounded is not None:
        out["log_z_bracket"] = [-bounded.bound, bounded.bound]
    learned = model.get(LearnedLogZ)
    if learned is not None:  # the model's own claim (NCE), reported beside the estimates, never used
        out["log_z_learned"] = float(learned.read(params))
    return out


def own_log_z(own: PartitionFunction, params, reference, key, cfg: NormalizeConfig) -> dict:
    """log Z by the model's own estimators: exact when it has one (as `log_z_grid`, the enumeration's
    key), AIS and reverse AIS with the config's chains and temperatures when it offers them."""
    out = dict.fromkeys(LOG_Z_KEYS)
    out["log_z_grid"] = own.exact(params)
    a = cfg.ais
    if own.ais is not None:
        res = own.ais(params, reference, key, a.num_chains, a.num_temps)
        out.update(log_z_ais=res.log_z, log_z_ais_se=res.log_z_se, log_z_ais_ess=res.ess)
        out.update(log_z_ais_bound=res.log_z_bound, log_z_ais_bound_se=res.log_z_bound_se)
        out["log_z_ais_moves"] = own.ais_method or None
    if own.reverse_ais is not None:
        rev, start = own.reverse_ais(params, reference, jax.random.fold_in(key, 3), a.num_chains, a.num_temps)
        out.update(log_z_reverse=rev.log_z, log_z_reverse_se=rev.log_z_se, log_z_reverse_start=start)
        out.update(log_z_reverse_bound=rev.log_z_bound, log_z_reverse_bound_se=rev.log_z_bound_se)
    return out


def normalize(
    model: Model, params, reference, key, box=None, cfg: NormalizeConfig = NormalizeConfig()
) -> tuple[Model, dict]:
    """(normalized model, log Z estimates) for an UNNORMALIZED model; others pass unchanged."""
    if model.kind != Kind.UNNORMALIZED:
        return model, dict.fromkeys(LOG_Z_KEYS)
    est = estimate_log_z(model, params, reference, key, box, cfg)
    own = model.get(PartitionFunction)
    if (own is not None or model.get(BinarySupport) is not None) and est["log_z_grid"] is not None:
        est["log_z_method"] = own.exact_method if own is not None else "enumeration"
        return with_log_z(model, est["log_z_grid"], 0.0, Kind.EXACT, est["log_z_method"]), est
    if cfg.use == "grid" and est["log_z_grid"] is not None:
        est["log_z_method"] = "grid"
        return with_log_z(model, est["log_z_grid"], None, Kind.ESTIMATE, "grid"), est
    if cfg.use == "is" and est["log_z_is"] is not None:
        est["log_z_method"] = "is"
        return with_log_z(model, est["log_z_is"], est["log_z_is_se"], Kind.ESTIMATE, "is"), est
    est["log_z_method"] = "ais"
    return with_log_z(model, est["log_z_ais"], est["log_z_ais_se"], Kind.ESTIMATE, "ais"), est


def has_noise_path(model: Model) -> bool:
    """Whether the model declares a noise path for AIS."""
    return model.get(NoisePath) is not None


def ais_base(model: Model, reference, cfg: NormalizeConfig = NormalizeConfig()) -> tuple[Base, str]:
    """(base, transition name) of AIS in the DATA space: independent Bernoulli + Gibbs for binary
    vectors (reverse AIS from exact samples uses it), else the reference's Gaussian + cfg's moves."""
    reference = np.asarray(reference, np.float32)
    if model.get(BinarySupport) is not None:
        return bernoulli_base(reference.mean(0)), "gibbs"
    scale = cfg.base_scale * _reference_scale(reference)
    return gaussian_base(reference.mean(0), scale), cfg.ais.transition


def sandwich_log_z(model: Model, params, reference, est: dict, key, cfg: NormalizeConfig) -> dict:
    """Reverse AIS from EXACT samples of an enumerable binary model (bidirectional Monte Carlo):
    forward AIS (in `est`) <= log Z <= reverse AIS in expectation, and the single-chain bounds (mean
    log weights) sandwich the enumerated log Z with their standard errors."""
    from gen_jax.likelihood.ais import reverse_ais
    from gen_jax.likelihood.enumerate import sample_enumerated

    batched = jax.jit(lambda x: model.log_prob(params, x))
    exact = sample_enumerated(batched, model.num_dims, key, cfg.ais.num_chains)
    base, transition = ais_base(model, reference, cfg)
    a = cfg.ais
    log_f = lambda x: model.log_prob(params, x[None])[0]
    rev = reverse_ais(
        log_f,
        base,
        exact,
        jax.random.fold_in(key, 1),
        a.num_temps,
        transition,
        a.steps_per_temp,
        a.schedule,
        a.num_pilot,
    )
    return dict(
        model=model.name,
        log_z_enumerated=est["log_z_grid"],
        log_z_forward=est["log_z_ais"],
        log_z_forward_se=est["log_z_ais_se"],
        log_z_reverse=rev.log_z,
        log_z_reverse_se=rev.log_z_se,
        bound_forward=est.get("log_z_ais_bound"),
        bound_forward_se=est.get("log_z_ais_bound_se"),
        bound_reverse=rev.log_z_bound,
        bound_reverse_se=rev.log_z_bound_se,
        num_chains=a.num_chains,
        num_temps=a.num_temps,
    )
