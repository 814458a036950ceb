"""Continuous-time variance-preserving diffusion with three likelihoods (Kingma et al. 2021, VDM;
Song et al. 2021).

The process: gamma(t) = -log SNR(t) increasing on t in [0, 1], alpha_t^2 = sigmoid(-gamma_t),
sigma_t^2 = sigmoid(gamma_t), and z_t = alpha_t x + sigma_t eps. As an SDE,

    dz = -1/2 beta(t) z dt + sqrt(beta(t)) dW,     beta(t) = gamma'(t) sigma_t^2,

whose probability-flow ODE is dz/dt = -1/2 gamma'(t) (sigma_t^2 z - sigma_t eps_hat(z, t)), with
eps_hat the noise-prediction network (score = -eps_hat / sigma). One `VPProcess` object carries the
schedule and the network; the loss, the bound, the ODE likelihood and the samplers all take it
(score_sde's `sde_lib` pattern).

Schedules (all given by gamma at t = 0 and t = 1):
- "linear": gamma linear in t (VDM's fixed schedule; uniform weight over log SNR);
- "cosine": gamma(t) = 2 log tan(a t + b), the cosine schedule alpha = cos(pi t / 2) truncated to
  [gamma_min, gamma_max];
- "learned": VDM's monotone network for the shape, with learned endpoints gamma_0 < gamma_1 set by
  the bound; the shape, which leaves the continuous-time bound unchanged, is trained to minimise
  the variance of the diffusion loss (VDM appendix I.2) or, with `schedule_objective="elbo"`, on
  the bound alone (as VDM's released code).

Losses: "elbo" (the likelihood-weighted continuous-time bound, VDM's loss) or "simple" (the
unweighted epsilon MSE of DDPM). Either way, the metrics report the bound in nats.

Likelihoods: `log_prob` is the bound (`Kind.LOWER_BOUND`, `gen_jax.likelihood.diffusion_bound`);
`estimators["ode"]` is the probability-flow ODE (`gen_jax.likelihood.ode`): exact (`Kind.EXACT`)
with the exact divergence for continuous vectors, an estimate (`Kind.ESTIMATE`) with Hutchinson's
divergence or for dequantized 8-bit data.

Data: "continuous" vectors (the 2D toys) with a Gaussian decoder, or "8bit" images whose values are
the integers 0..255 (any dtype), with the discretized decoder: the bound is then on the probability
mass of the 8-bit image, so bits/dim follow with `nats_to_bits_per_dim` and no offset.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.likelihood import diffusion_bound as bound
from gen_jax.likelihood.ode import ODEConfig, ode_log_prob, standard_normal_log_prob
from gen_jax.likelihood.units import nats_to_bits_per_dim
from gen_jax.models.base import Estimator, Kind, Model
from gen_jax.nn.mlp import activation as activation_fn
from gen_jax.nn.time_mlp import TimeMLP
from gen_jax.nn.unet import UNet
from gen_jax.sampling.diffusion import sde_sample

Array = jax.Array
Params = Any


# ----------------------------------------------------------------------------- schedules


def _inverse_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


@dataclasses.dataclass(frozen=True)
class LinearLogSNR:
    """gamma(t) = gamma_min + (gamma_max - gamma_min) t."""

    gamma_min: float
    gamma_max: float

    def init(self, key: Array) -> dict:
        return {}

    def __call__(self, params: dict, t: Array) -> Array:
        return self.gamma_min + (self.gamma_max - self.gamma_min) * t


@dataclasses.dataclass(frozen=True)
class CosineLogSNR:
    """gamma(t) = 2 log tan(a t + b), so alpha_t = cos(a t + b): the cosine schedule, truncated to
    [gamma_min, gamma_max]."""

    gamma_min: float
    gamma_max: float

    def init(self, key: Array) -> dict:
        return {}

    def __call__(self, params: dict, t: Array) -> Array:
        b = math.atan(math.exp(0.5 * self.gamma_min))
        a = math.atan(math.exp(0.5 * self.gamma_max)) - b
        return 2.0 * jnp.log(jnp.tan(a * t + b))


class _DenseMonotone(nn.Module):
    """Dense layer with non-negative weights (|kernel|): increasing in every input."""

    features: int
    kernel_init: Callable = nn.initializers.normal(1.0)
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: Array) -> Array:
        kernel = jnp.abs(self.param("kernel", self.kernel_init, (x.shape[-1], self.features)))
        y = x @ kernel
        return y + self.param("bias", nn.initializers.zeros, (self.features,)) if self.use_bias else y


class _MonotoneNet(nn.Module):
    """VDM's NoiseSchedule_NNet: a linear term plus a monotone sigmoid network of t (scalar -> scalar)."""

    features: int = 256

    @nn.compact
    def __call__(self, t: Array) -> Array:
        t = jnp.reshape(t, (1,))
        h = _DenseMonotone(1, kernel_init=nn.initializers.ones)(t)
        u = _DenseMonotone(self.features)(2.0 * (t - 0.5))
        u = 2.0 * (jax.nn.sigmoid(u) - 0.5)
        h = h + _DenseMonotone(1, use_bias=False)(u) / self.features
        return h[0]


@dataclasses.dataclass(frozen=True)
class LearnedLogSNR:
    """gamma(t) = gamma_0 + (gamma_1 - gamma_0) s(t), s the normalized monotone network (s(0)=0, s(1)=1);
    gamma_0 and gamma_1 > gamma_0 are learned, starting at gamma_min and gamma_max."""

    gamma_min: float
    gamma_max: float
    features: int = 256

    def init(self, key: Array) -> dict:
        return {
            "shape": _MonotoneNet(self.features).init(key, jnp.zeros(()))["params"],
            "gamma0": jnp.asarray(self.gamma_min, jnp.float32),
            "log_range": jnp.asarray(_inverse_softplus(self.gamma_max - self.gamma_min), jnp.float32),
        }

    def endpoints(self, params: dict) -> tuple[Array, Array]:
        return params["gamma0"], params["gamma0"] + jax.nn.softplus(params["log_range"])

    def shape(self, params: dict, t: Array) -> Array:
        h = lambda t: _MonotoneNet(self.features).apply({"params": params["shape"]}, t)
        h0, h1 = h(jnp.zeros(())), h(jnp.ones(()))
        return (h(t) - h0) / (h1 - h0)

    def __call__(self, params: dict, t: Array) -> Array:
        g0, g1 = self.endpoints(params)
        return g0 + (g1 - g0) * self.shape(params, t)


SCHEDULES = {"linear": LinearLogSNR, "cosine": CosineLogSNR, "learned": LearnedLogSNR}


# ----------------------------------------------------------------------------- the process


@dataclasses.dataclass(frozen=True)
class VPProcess:
    """A variance-preserving diffusion: `gamma(params, t)` and the noise predictor `eps_g(params, z, gamma)`.

    Every method acts on ONE example z (of the event shape) at a scalar time t.
    """

    gamma: Callable[[Params, Array], Array]
    eps_g: Callable[[Params, Array, Array], Array]

    def gamma_and_rate(self, params, t) -> tuple[Array, Array]:
        """(gamma(t), gamma'(t))."""
        t = jnp.asarray(t, jnp.float32)
        return jax.jvp(lambda t: self.gamma(params, t), (t,), (jnp.ones_like(t),))

    def alpha_sigma(self, params, t) -> tuple[Array, Array]:
        g = self.gamma(params, jnp.asarray(t, jnp.float32))
        return jnp.sqrt(jax.nn.sigmoid(-g)), jnp.sqrt(jax.nn.sigmoid(g))

    def eps(self, params, z: Array, t: Array) -> Array:
        return self.eps_g(params, z, self.gamma(params, jnp.asarray(t, jnp.float32)))

    def marginal(self, params, x: Array, t: Array, eps: Array) -> Array:
        """z_t = alpha_t x + sigma_t eps."""
        alpha, sigma = self.alpha_sigma(params, t)
        return alpha * x + sigma * eps

    def score(self, params, z: Array, t: Array) -> Array:
        """grad log p_t(z) = -eps_hat / sigma_t."""
        return -self.eps(params, z, t) / self.alpha_sigma(params, t)[1]

    def sde(self, params, z: Array, t: Array) -> tuple[Array, Array]:
        """Forward SDE dz = f z dt + g dW: (drift f z, diffusion coefficient g)."""
        g, rate = self.gamma_and_rate(params, t)
        var = jax.nn.sigmoid(g)
        return -0.5 * rate * var * z, jnp.sqrt(rate * var)

    def reverse_drift(self, params, z: Array, t: Array) -> Array:
        """Drift of the reverse-time SDE, f z - g^2 score, in forward time."""
        g, rate = self.gamma_and_rate(params, t)
        var = jax.nn.sigmoid(g)
        return -0.5 * rate * var * z + rate * jnp.sqrt(var) * self.eps_g(params, z, g)

    def ode_drift(self, params, z: Array, t: Array) -> Array:
        """Probability-flow ODE: dz/dt = f z - 1/2 g^2 score = -1/2 gamma' (sigma^2 z - sigma eps_hat)."""
        g, rate = self.gamma_and_rate(params, t)
        var = jax.nn.sigmoid(g)
        return -0.5 * rate * (var * z - jnp.sqrt(var) * self.eps_g(params, z, g))


# ----------------------------------------------------------------------------- the model


def diffusion(
    event_shape: tuple[int, ...],
    schedule: str = "linear",
    gamma_min: float = -10.0,
    gamma_max: float = 7.0,
    loss: str = "elbo",
    schedule_objective: str = "variance",
    data: str = "continuous",
    hidden: int = 128,
    num_blocks: int = 3,
    embed_dim: int = 64,
    embed_scale: float = 20.0,
    activation: str = "silu",
    unet_channels: Sequence[int] = (32, 64, 64),
    unet_attention: bool = True,
    unet_patch: int = 1,
    unet_res_blocks: int = 1,
    conv_impl: str = "auto",
    elbo_samples: int = 64,
    sample_steps: int = 500,
    sampler: str = "ancestral",
    ode_solver: str = "tsit5",
    ode_rtol: float = 1e-5,
    ode_atol: float = 1e-5,
    divergence: str = "auto",
    probe: str = "rademacher",
    ode_grid_n: int = 100,
    grid_n: int = 100,
    name: str = "diffusion",
) -> Model:
    """A continuous-time VP diffusion on the common Model surface (see the module docstring).

    Vectors (event_shape (D,)) use a residual `TimeMLP` (`hidden`, `num_blocks`); images (H, W, C)
    a `UNet` (`unet_channels`). Both see the noise level through sinusoids of `embed_scale` times
    the normalized gamma: 20 keeps the network smooth in time, so the adaptive ODE solver needs
    about 8x fewer evaluations than with the usual 1000, at no loss of likelihood on the 2D toys.
    `elbo_samples`: stratified times per example in `log_prob`.
    `sample_steps`, `sampler` ("ancestral" or "euler_maruyama"): `sample`. The ODE estimator uses
    `ode_*`, `divergence` ("exact", "hutchinson", or "auto": exact up to 16 dimensions) and `probe`.
    `grid_n` and `ode_grid_n`: cells a side of 2D density grids for the bound and the ODE (both cost
    far more per point than a flow's density).
    """
    event_shape = tuple(int(s) for s in event_shape)
    num_dims = math.prod(event_shape)
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {sorted(SCHEDULES)}")
    if loss not in ("elbo", "simple"):
        raise ValueError(f"unknown diffusion loss {loss!r}; choose 'elbo' or 'simple'")
    if schedule == "learned" and loss != "elbo":
        raise ValueError("a learned schedule is trained by the bound: use loss='elbo' with it")
    if schedule_objective not in ("variance", "elbo"):
        raise ValueError(f"unknown schedule_objective {schedule_objective!r}; choose 'variance' or 'elbo'")
    if data not in ("continuous", "8bit"):
        raise ValueError(f"unknown data type {data!r}; choose 'continuous' or '8bit'")
    if not gamma_min < gamma_max:
        raise ValueError(f"need gamma_min < gamma_max (gamma = -log SNR), got {gamma_min}, {gamma_max}")
    if sampler not in ("ancestral", "euler_maruyama"):
        raise ValueError(f"unknown sampler {sampler!r}; choose 'ancestral' or 'euler_maruyama'")
    if divergence == "auto":
        divergence = "exact" if num_dims <= 16 else "hutchinson"
    ode_cfg = ODEConfig(ode_solver, ode_rtol, ode_atol, divergence=divergence, probe=probe)
    decoder = "gaussian" if data == "continuous" else "discretized"

    sched = SCHEDULES[schedule](gamma_min, gamma_max)
    if len(event_shape) == 1:
        net = TimeMLP(num_dims, hidden, num_blocks, embed_dim, embed_scale, activation_fn(activation))
        apply_net = lambda p, z, c: net.apply({"params": p}, z, c)
        arch = f"TimeMLP {num_blocks} residual blocks x {hidden} {activation}"
    elif len(event_shape) == 3:
        net = UNet(
            event_shape[-1],
            tuple(unet_channels),
            embed_dim=embed_dim,
            embed_scale=embed_scale,
            attention=unet_attention,
            patch=unet_patch,
            num_res_blocks=unet_res_blocks,
            conv_impl=conv_impl,
        )
        apply_net = lambda p, z, c: net.apply({"params": p}, z[None], c[None])[0]
        arch = f"UNet channels {list(unet_channels)} x {unet_res_blocks} blocks" + (
            f", on {unet_patch}x{unet_patch} patches" if unet_patch > 1 else ""
        )
    else:
        raise ValueError(
            f"diffusion models vectors (D,) or images (H, W, C); got examples of shape {event_shape}"
        )

    def gamma(params, t):
        return sched(params["schedule"], t)

    def eps_g(params, z, g):
        c = (g - gamma_min) / (gamma_max - gamma_min)  # the network sees the noise level, about [0, 1]
        return apply_net(params["net"], z, c)

    process = VPProcess(gamma, eps_g)

    def init(key, x):
        k_net, k_sched = jax.random.split(key)
        if len(event_shape) == 1:  # one example: the vector network is applied per example
            z, c = jnp.zeros(event_shape, jnp.float32), jnp.zeros((), jnp.float32)
        else:  # the U-Net takes a batch (of one, inside the vmap)
            z, c = jnp.zeros((1, *event_shape), jnp.float32), jnp.zeros((1,), jnp.float32)
        return {"net": net.init(k_net, z, c)["params"], "schedule": sched.init(k_sched)}

    encode = (lambda x: x) if data == "continuous" else bound.encode_8bit

    def recon_term(params, x, eps0):
        if decoder == "gaussian":
            return bound.gaussian_reconstruction_term(process, params, num_dims)
        return bound.discretized_reconstruction_term(process, params, x, eps0)

    def loss_fn(params, batch, key):
        b = batch.shape[0]
        k_t, k_eps, k_0 = jax.random.split(key, 3)
        t = jnp.mod(jax.random.uniform(k_t) + jnp.arange(b, dtype=jnp.float32) / b, 1.0)  # antithetic
        eps = jax.random.normal(k_eps, batch.shape)
        eps0 = jax.random.normal(k_0, batch.shape)
        xe = encode(batch)
        g, rate = jax.vmap(lambda t: process.gamma_and_rate(params, t))(t)
        mse = jax.vmap(lambda x, g, e: bound.noise_mse(process, params, x, g, e))(xe, g, eps)
        cv = jax.vmap(bound.control_variate)(g, eps)
        diff = 0.5 * rate * (mse - cv)  # = bound.diffusion_term, the network evaluated once for both uses
        prior = jax.vmap(lambda x: bound.prior_term(process, params, x))(xe)
        recon = jax.vmap(lambda x, e: recon_term(params, x, e))(batch, eps0)
        nll = jnp.mean(prior + diff - recon)
        objective = nll if loss == "elbo" else jnp.mean(mse) / num_dims
        if schedule == "learned" and schedule_objective == "variance":
            objective = objective + _variance_surrogate(sched, process, params, xe, t, eps, diff)
        metrics = {
            "elbo_nll": nll,
            "prior": jnp.mean(prior),
            "diffusion": jnp.mean(diff),
            "reconstruction": jnp.mean(recon),
            "mse_per_dim": jnp.mean(mse) / num_dims,
            "gamma_0": gamma(params, jnp.zeros(())),
            "gamma_1": gamma(params, jnp.ones(())),
        }
        if data == "8bit":
            metrics["elbo_bpd"] = nats_to_bits_per_dim(nll, num_dims)
        return objective, metrics

    def elbo_terms(params, x, key):
        keys = jax.random.split(key, x.shape[0])
        return jax.vmap(lambda x, k: bound.elbo_terms(process, params, x, k, elbo_samples, decoder))(x, keys)

    def log_prob(params, x, key):
        return elbo_terms(params, x, key)["elbo"]

    def ode_log_prob_and_nfe(params, x, key):
        alpha0, _ = process.alpha_sigma(params, 0.0)
        k_u, k_probe = jax.random.split(key)
        if data == "8bit":  # uniform dequantization within each pixel's bin of width 2/256
            u = jax.random.uniform(k_u, x.shape)
            y = 2.0 * (jnp.round(x) + u) / bound.NUM_VALUES_8BIT - 1.0
            log_bin = num_dims * math.log(2.0 / bound.NUM_VALUES_8BIT)
        else:
            y, log_bin = x, 0.0
        vf = lambda z, t: process.ode_drift(params, z, t)
        lp, nfe = ode_log_prob(vf, standard_normal_log_prob, alpha0 * y, k_probe, ode_cfg)
        # x = z_0 / alpha_0 (times the bin width for 8-bit): change of variables
        return lp + num_dims * jnp.log(alpha0) + log_bin, nfe

    def ode_lp(params, x, key):
        return ode_log_prob_and_nfe(params, x, key)[0]

    def sample(params, key, n):
        k_z, k_x = jax.random.split(key)
        z0 = sde_sample(process, params, k_z, n, event_shape, sample_steps, sampler)
        return decode_sample(params, z0, k_x)

    def decode_sample(params, z0, key):
        """x ~ p(x | z_0): the decoder's sample (Gaussian, or the 256-way categorical per pixel)."""
        alpha0, _ = process.alpha_sigma(params, 0.0)
        g0 = gamma(params, jnp.zeros(()))
        if data == "continuous":
            return z0 / alpha0 + jnp.exp(0.5 * g0) * jax.random.normal(key, z0.shape)
        logp = jax.vmap(lambda z: bound.discretized_log_probs(process, params, z))(z0)
        return jax.random.categorical(key, logp, axis=-1).astype(
            jnp.uint8
        )  # 8-bit images, as every image model samples

    ode_kind = Kind.EXACT if divergence == "exact" and data == "continuous" else Kind.ESTIMATE
    info = dict(
        family="diffusion",
        architecture=f"VP diffusion, {schedule} log-SNR schedule [{gamma_min}, {gamma_max}], {arch}",
        objective=loss,
        data=data,
        grid_n=grid_n,
        sample_steps=sample_steps,
        sampler=sampler,
        ode=dataclasses.asdict(ode_cfg),
    )
    return Model(
        name=name,
        event_shape=event_shape,
        kind=Kind.LOWER_BOUND,
        init=init,
        loss=loss_fn,
        log_prob=log_prob,
        sample=sample,
        info=info,
        estimators={"ode": Estimator(ode_kind, ode_lp, grid_n=ode_grid_n)},
        parts={
            "process": process,
            "schedule": sched,
            "elbo_terms": elbo_terms,
            "ode_log_prob_and_nfe": ode_log_prob_and_nfe,
            "ode_config": ode_cfg,
            "decode_sample": decode_sample,
            "encode": encode,
        },
    )


def _variance_surrogate(sched: LearnedLogSNR, process: VPProcess, params, xe, t, eps, diff) -> Array:
    """A zero-valued term whose gradient turns the schedule shape's gradient into that of E[L^2].

    The continuous-time bound does not depend on the shape s(t) of the schedule between its
    endpoints; only the variance of its Monte Carlo estimate does (VDM appendix I.2). With the
    per-example diffusion loss L_i = 1/2 gamma'(t_i) m_i(gamma(t_i)) and gamma = g0 + (g1 - g0) s,
    adding mean_i sg(2 L_i - 1) [dL_i/ds_i (s_i - sg s_i) + dL_i/ds'_i (s'_i - sg s'_i)] to the loss
    makes the shape parameters follow d/d(shape) mean(L_i^2), while the network and the endpoints
    keep the gradient of the bound (sg = stop_gradient).
    """
    frozen = jax.lax.stop_gradient(params)
    g0, g1 = (jax.lax.stop_gradient(v) for v in sched.endpoints(params["schedule"]))
    derivative = lambda f, v: jax.jvp(f, (v,), (jnp.ones_like(v),))
    g, rate = jax.vmap(lambda t: process.gamma_and_rate(frozen, t))(t)
    m, dm_dg = jax.vmap(
        lambda x, g, e: derivative(lambda g: bound.controlled_mse(process, frozen, x, g, e), g)
    )(xe, g, eps)
    dl_ds = jax.lax.stop_gradient(0.5 * rate * dm_dg * (g1 - g0))
    dl_dsrate = jax.lax.stop_gradient(0.5 * m * (g1 - g0))
    shape_params = {**frozen["schedule"], "shape": params["schedule"]["shape"]}
    s, srate = jax.vmap(lambda t: derivative(lambda t: sched.shape(shape_params, t), t))(t)
    weight = jax.lax.stop_gradient(2.0 * diff - 1.0)
    centred = lambda v: v - jax.lax.stop_gradient(v)
    return jnp.mean(weight * (dl_ds * centred(s) + dl_dsrate * centred(srate)))
