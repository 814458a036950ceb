"""An energy model on a normalized base: log p~(v) = log q(v) - B tanh(f(v) / B), q a flow.

    model = make_model("ebm_flow", (28, 28, 1), base_options=dict(steps_per_level=4, channels=32))
    model = make_model("ebm_nsf", 2)         # vectors: q a neural spline flow, f an MLP
    model.kind == Kind.UNNORMALIZED          # normalized by gen_jax.likelihood.normalize

Images (`ebm_flow`): v is the logit of a uniformly dequantized 8-bit image (Glow's own space,
`gen_jax.models.image_flows`), q the Glow's density there, f a convolutional network (`EnergyConv`).
Vectors (`ebm_nsf`): v = x (standardized by the registry's affine map like every vector model), q an
NSF, f an MLP (`EnergyMLP`). In both f is bounded by B. The base gives what a pure energy model lacks:
exact samples and an exact log q, so the normalizer

    Z = integral of q(v) exp(-B tanh(f(v) / B)) dv = E_q[exp(-B tanh(f / B))]

is an expectation under q: importance sampling from q estimates it with no Markov chain (its ESS
reported), AIS from q along q exp(-beta B tanh(f / B)) estimates it independently, and |B tanh| < B
puts log Z in (-B, B) for certain (`NormalizedBase`, `BoundedCorrection`).

Training: one loss in two parts with disjoint parameters. The base learns by maximum likelihood on
the dequantized data (Glow's objective); f and c (a learned log Z) by noise-contrastive estimation
against the current q (Gutmann & Hyvarinen 2010): classify the data's v from `nce_ratio` times as many
draws of q with the logit log p(v) - log(nu q(v)) = -B tanh(f(v) / B) - c - log nu. log q cancels in
that ratio, so the classifier never evaluates q, and q's draws are constants (no gradient into the
base through them). At the optimum exp(-B tanh(f / B) - c) = p_data / q, the base's own error.

log_prob(params, x, key): images: ONE dequantization draw, log q(v) - B tanh(f(v) / B) + log |dv/dx|,
whose expectation over the draw, less log Z, is a lower bound on log P(x) (as Glow's `log_prob`);
vectors: log q(x) - B tanh(f(x) / B), which less log Z is the model's log-density.
The estimator "base" is the base's own number (Glow's bound, one draw; the NSF's exact log q), so that
the correction's gain is read off paired on the same examples. Samples: sampling-importance-resampling:
`sir_candidates` draws of q per sample, one kept with probability proportional to exp(-B tanh(f / B))
(exact as the candidates grow).
"""

from __future__ import annotations

import dataclasses
import math

import distrax
import jax
import jax.numpy as jnp

from gen_jax.core import Estimator, Kind, Model, check_batch
from gen_jax.core.capabilities import BoundedCorrection, ContinuousSpace, LearnedLogZ, NormalizedBase
from gen_jax.data.transforms import LOG_256, dequantize
from gen_jax.models.flows import nsf
from gen_jax.models.image_flows import glow
from gen_jax.nn.energy import EnergyConv, EnergyMLP
from gen_jax.nn.mlp import activation as activation_fn
from gen_jax.nn.mlp import compute_dtype as dtype_of
from gen_jax.nn.mlp import mixed_precision

Array = jax.Array


def nce_loss(correction_data: Array, correction_noise: Array, log_z, ratio: int) -> tuple[Array, Array]:
    """NCE against the base (per data example, nats): data labelled 1, `ratio` noise draws per data
    example labelled 0, logit G = -correction - log Z - log ratio. Returns (loss, accuracy)."""
    shift = log_z + math.log(ratio)
    g_data, g_noise = -correction_data - shift, -correction_noise - shift
    loss = -jnp.mean(jax.nn.log_sigmoid(g_data)) - ratio * jnp.mean(jax.nn.log_sigmoid(-g_noise))
    accuracy = 0.5 * (jnp.mean(g_data > 0) + jnp.mean(g_noise < 0))
    return loss, accuracy


@dataclasses.dataclass(frozen=True)
class FlowEnergy:
    """The pieces of log p~(v) = log q(v) - B tanh(f(v) / B) as pure functions of the parameters; the
    base's space and density are the subclass's (`GlowEnergy`, `VectorFlowEnergy`)."""

    base: Model
    net: object  # the correction network: (v batch, zeros) -> (n,)
    apply: object  # net.apply, in the compute dtype
    bound: float
    num_dims: int

    def correction(self, params, v):  # (n, ...) -> (n,), in (-B, B)
        f = self.apply({"params": params["f"]}, v, jnp.zeros(v.shape[:1]))
        return self.bound * jnp.tanh(f / self.bound)

    def log_density(self, params, v, sigma=None):  # ONE v
        return self.base_log_prob(params, v[None])[0] - self.correction(params, v[None])[0]

    def log_correction(self, params, v):  # ONE v: log p~(v) - log q(v)
        return -self.correction(params, v[None])[0]

    def init(self, key, x):
        v = self.to_continuous(None, jnp.asarray(x), jax.random.fold_in(key, 2))[0]
        f = self.net.init(jax.random.fold_in(key, 1), v[:2], jnp.zeros(2))["params"]
        return {"base": self.base.init(key, x), "f": f, "log_z": jnp.zeros(())}


@dataclasses.dataclass(frozen=True)
class GlowEnergy(FlowEnergy):
    """8-bit images: v the logit of the dequantized image, q the Glow's density of v."""

    @property
    def logit(self):
        return self.base.internals["arch"].logit

    def density_v(self, params) -> distrax.Distribution:
        """The base's density of ONE v (H, W, C) on the logit scale: the Glow without its logit
        transform (sampled and scored in v directly, never through y in (0, 1), where float32's
        sigmoid rounds to 1 for v > 16.6 and the logit of that is infinite)."""
        arch = self.base.internals["arch"]
        to_z = arch.encoder(params["base"]).bijectors[0]  # the encoder is Chain([flow, logit])
        normal = distrax.MultivariateNormalDiag(jnp.zeros(self.num_dims), jnp.ones(self.num_dims))
        return distrax.Transformed(normal, distrax.Inverse(to_z))

    def to_continuous(self, params, x, key):
        v, log_det = self.logit.forward_and_log_det(dequantize(x, key))
        return v, log_det - self.num_dims * LOG_256

    def to_data(self, v):
        return jnp.clip(jnp.floor(self.logit.inverse(v) * 256.0), 0, 255).astype(jnp.uint8)

    def base_sample(self, params, key, n):
        return jax.vmap(lambda k: self.density_v(params).sample(seed=k))(jax.random.split(key, n))

    def base_log_prob(self, params, v):
        return jax.vmap(self.density_v(params).log_prob)(v)

    def from_latent(self, params, z):  # ONE flat latent -> ONE v
        return self.base.internals["arch"].encoder(params["base"]).bijectors[0].inverse(z)


@dataclasses.dataclass(frozen=True)
class VectorFlowEnergy(FlowEnergy):
    """Real vectors: v = x, q the base flow's exact density."""

    def to_continuous(self, params, x, key):
        return x, jnp.zeros(x.shape[:1], jnp.float32)

    def to_data(self, v):
        return v

    def base_sample(self, params, key, n):
        return self.base.sample(params["base"], key, n)

    def base_log_prob(self, params, v):
        return self.base.log_prob(params["base"], v)

    def from_latent(self, params, z):  # ONE latent -> ONE x
        return self.base.internals["bijector"](params["base"]).forward(z[None])[0]


def make_loss(fe: FlowEnergy, nce_ratio: int):
    """The base's NLL plus NCE of the correction against the base's own (constant) draws."""

    def loss(params, x, key):
        k_deq, k_noise = jax.random.split(key)
        base_nll = -jnp.mean(fe.base.log_prob(params["base"], x, k_deq))
        v_data = fe.to_continuous(params, x, k_deq)[0]
        v_noise = jax.lax.stop_gradient(fe.base_sample(params, k_noise, nce_ratio * x.shape[0]))
        corr_data, corr_noise = fe.correction(params, v_data), fe.correction(params, v_noise)
        nce, accuracy = nce_loss(corr_data, corr_noise, params["log_z"], nce_ratio)
        metrics = {"nll": base_nll, "nce": nce, "nce_accuracy": accuracy, "log_z_learned": params["log_z"]}
        return base_nll + nce, metrics

    return loss


def make_sampler(fe: FlowEnergy, candidates: int, event_shape):
    """Sampling-importance-resampling: one of `candidates` base draws, by weight exp(-correction)."""

    def sample(params, key, n):
        k_q, k_pick = jax.random.split(key)
        v = fe.base_sample(params, k_q, n * candidates)
        log_w = -fe.correction(params, v).reshape(n, candidates)
        pick = jax.random.categorical(k_pick, log_w, axis=-1)
        return fe.to_data(v.reshape(n, candidates, *event_shape)[jnp.arange(n), pick])

    return sample


def ebm_flow(
    event_shape: tuple[int, ...] = (28, 28, 1),
    base_options: dict | None = None,
    conv_features: tuple[int, ...] = (32, 64, 64),
    correction_bound: float = 50.0,
    nce_ratio: int = 1,
    sir_candidates: int = 64,
    conv_impl: str = "auto",
    compute_dtype: str = "float32",
    name: str = "ebm_flow",
) -> Model:
    """An energy correction of a Glow, for 8-bit images (see the module docstring).

    Args:
      base_options: options of the base `glow` (its architecture; `compute_dtype` is this model's).
      conv_features: the correction network's convolutions (`EnergyConv`).
      correction_bound: B: the correction is B tanh(f / B), so log Z lies in (-B, B).
      nce_ratio: draws of the base per data example in the NCE loss.
      sir_candidates: draws of the base per sample (sampling-importance-resampling).
      compute_dtype: "bfloat16": the base's conditioners and the correction network in bfloat16.
    """
    event_shape = tuple(int(s) for s in event_shape)
    _check(correction_bound, nce_ratio, sir_candidates)
    base = glow(event_shape, **{**(base_options or {}), "compute_dtype": compute_dtype})
    net = EnergyConv(tuple(conv_features), conv_impl=conv_impl)
    apply = mixed_precision(net.apply, dtype_of(compute_dtype))
    fe = GlowEnergy(base, net, apply, float(correction_bound), math.prod(event_shape))
    arch = f"conv {tuple(conv_features)}"
    return _energy_model(fe, name, event_shape, nce_ratio, sir_candidates, arch, True)


def ebm_nsf(
    event_dim: int,
    base_options: dict | None = None,
    hidden: tuple[int, ...] = (128, 128),
    activation: str = "silu",
    correction_bound: float = 10.0,
    nce_ratio: int = 4,
    sir_candidates: int = 64,
    compute_dtype: str = "float32",
    name: str = "ebm_nsf",
) -> Model:
    """An energy correction of a neural spline flow, for real vectors (see the module docstring).

    Args:
      base_options: options of the base `nsf` (`gen_jax.models.flows.nsf`).
      hidden, activation: the correction MLP (`EnergyMLP`).
      correction_bound, nce_ratio, sir_candidates, compute_dtype: as `ebm_flow`'s.
    """
    _check(correction_bound, nce_ratio, sir_candidates)
    base = nsf(int(event_dim), **{**(base_options or {}), "compute_dtype": compute_dtype})
    net = EnergyMLP(tuple(hidden), activation_fn(activation))
    apply = mixed_precision(net.apply, dtype_of(compute_dtype))
    fe = VectorFlowEnergy(base, net, apply, float(correction_bound), int(event_dim))
    arch = f"MLP {list(hidden)} {activation}"
    return _energy_model(fe, name, (int(event_dim),), nce_ratio, sir_candidates, arch, False)


def _check(correction_bound, nce_ratio, sir_candidates):
    if not correction_bound > 0 or nce_ratio < 1 or sir_candidates < 1:
        raise ValueError("an energy on a flow needs correction_bound > 0, nce_ratio >= 1, sir_candidates > 0")


def _energy_model(fe: FlowEnergy, name, event_shape, nce_ratio, candidates, arch, needs_key) -> Model:
    """The Model of a `FlowEnergy`: log p~ = log q - correction, trained by `make_loss`."""
    base = fe.base

    def log_prob(params, x, key=None):
        if needs_key and key is None:
            raise ValueError(f"{name}.log_prob needs a PRNG key: it dequantizes the 8-bit images")
        check_batch(x, event_shape)
        v, log_det = fe.to_continuous(params, x, key)
        return fe.base_log_prob(params, v) - fe.correction(params, v) + log_det

    def init(key, x):
        check_batch(x, event_shape, "the example batch")
        return fe.init(key, x)

    b = fe.bound
    info = dict(
        family="ebm",
        objective=f"base: maximum likelihood; correction: NCE against the base (ratio {nce_ratio})",
        architecture=f"{base.info['architecture']} x exp(-{b:g} tanh(f / {b:g})), f: {arch}",
        constants=base.info.get("constants", {}),
    )
    # the base alone (Glow's one-draw bound, the NSF's exact log q): the correction's gain, paired
    base_view = Estimator(base.kind, lambda params, x, key=None: base.log_prob(params["base"], x, key))
    return Model(
        name=name,
        event_shape=event_shape,
        kind=Kind.UNNORMALIZED,
        init=init,
        loss=make_loss(fe, nce_ratio),
        log_prob=log_prob,
        sample=make_sampler(fe, candidates, event_shape),
        info=info,
        estimators={"base": base_view},
        capabilities=(
            ContinuousSpace(fe.to_continuous, fe.log_density),
            NormalizedBase(fe.base_sample, fe.base_log_prob, fe.log_correction, fe.from_latent),
            BoundedCorrection(b),
            LearnedLogZ(lambda params: params["log_z"]),
        ),
    )
