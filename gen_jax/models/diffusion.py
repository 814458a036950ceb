"""Continuous-time variance-preserving diffusion with three likelihoods (Kingma et al. 2021, VDM;
Song et al. 2021), on the process of `gen_jax.process` (schedules, `VPProcess`).

Losses: "elbo" (the likelihood-weighted continuous-time bound, VDM's loss) or "simple" (the
unweighted epsilon MSE of DDPM). Either way, the metrics report the bound in nats. A learned
schedule's shape, which leaves the continuous-time bound unchanged, is trained to minimise the
variance of the diffusion loss (VDM appendix I.2) or, with `schedule_objective="elbo"`, on the bound.

Likelihoods: `log_prob` is the bound (`Kind.LOWER_BOUND`, `gen_jax.likelihood.diffusion_bound`);
`estimators["ode"]` is the probability-flow ODE (`gen_jax.likelihood.ode`): exact (`Kind.EXACT`)
with the exact divergence for continuous vectors, an estimate (`Kind.ESTIMATE`) with Hutchinson's
divergence or for dequantized 8-bit data (one dequantization draw: `Dequantized`). The ODE with any
solver configuration is the `ProbabilityFlow` capability.

Data: "continuous" vectors with a Gaussian decoder, or "8bit" images whose values are the integers
0..255 (any dtype), with the discretized decoder: the bound is then on the probability mass of the
8-bit image, so bits/dim follow with `nats_to_bits_per_dim` and no offset. Vector models may be
conditional (`context_dim`): the noise predictor sees the context, log p(x | c).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from gen_jax.core import Estimator, Kind, Model
from gen_jax.core.capabilities import Dequantized, MonteCarloBound, ProbabilityFlow
from gen_jax.core.units import nats_to_bits_per_dim
from gen_jax.likelihood import diffusion_bound as bound
from gen_jax.likelihood.ode import ode_log_prob, standard_normal_log_prob
from gen_jax.nn.mlp import activation as activation_fn
from gen_jax.nn.mlp import compute_dtype as dtype_of
from gen_jax.nn.mlp import mixed_precision
from gen_jax.nn.time_mlp import TimeMLP
from gen_jax.nn.unet import UNet
from gen_jax.process import SCHEDULES, LearnedLogSNR, ODEConfig, VPProcess
from gen_jax.sampling.diffusion import ode_sample, sde_sample

Array = jax.Array
Params = Any


@dataclasses.dataclass(frozen=True)
class DiffusionOptions:
    """Every option of `diffusion` (see its docstring); validated on construction."""

    schedule: str = "linear"
    gamma_min: float = -10.0
    gamma_max: float = 7.0
    loss: str = "elbo"
    schedule_objective: str = "variance"
    data: str = "continuous"
    width: int = 128
    num_blocks: int = 3
    embed_dim: int = 64
    embed_scale: float = 20.0
    activation: str = "silu"
    unet_channels: tuple[int, ...] = (32, 64, 64)
    unet_attention: bool = True
    unet_patch: int = 1
    unet_res_blocks: int = 1
    conv_impl: str = "auto"
    compute_dtype: str = "float32"  # "bfloat16": the network in bfloat16 (float32 parameters and bounds)
    elbo_samples: int = 64
    sample_steps: int = 500
    sampler: str = "ancestral"
    ode_solver: str = "tsit5"
    ode_rtol: float = 1e-5
    ode_atol: float = 1e-5
    divergence: str = "auto"
    probe: str = "rademacher"
    ode_grid_n: int = 100
    grid_n: int = 100

    def __post_init__(self):
        choices = {
            "schedule": tuple(SCHEDULES),
            "loss": ("elbo", "simple"),
            "schedule_objective": ("variance", "elbo"),
            "data": ("continuous", "8bit"),
            "sampler": ("ancestral", "euler_maruyama"),
            "divergence": ("auto", "exact", "hutchinson"),
        }
        for field, allowed in choices.items():
            if getattr(self, field) not in allowed:
                raise ValueError(
                    f"unknown diffusion {field} {getattr(self, field)!r}; choose one of {allowed}"
                )
        if self.schedule == "learned" and self.loss != "elbo":
            raise ValueError("a learned schedule is trained by the bound: use loss='elbo' with it")
        if not self.gamma_min < self.gamma_max:
            raise ValueError(
                f"need gamma_min < gamma_max (gamma = -log SNR), got {self.gamma_min}, {self.gamma_max}"
            )

    def ode_config(self, num_dims: int) -> ODEConfig:
        """The ODE estimator's solver configuration ("auto" divergence: exact up to 16 dimensions)."""
        divergence = self.divergence
        if divergence == "auto":
            divergence = "exact" if num_dims <= 16 else "hutchinson"
        return ODEConfig(
            self.ode_solver, self.ode_rtol, self.ode_atol, divergence=divergence, probe=self.probe
        )


def _network(opts: DiffusionOptions, event_shape: tuple[int, ...], context_dim: int | None):
    """(init(key) -> net params, apply(net params, z, c, context) -> eps_hat, architecture)."""
    num_dims = math.prod(event_shape)
    if len(event_shape) == 1:
        net = TimeMLP(
            num_dims,
            opts.width,
            opts.num_blocks,
            opts.embed_dim,
            opts.embed_scale,
            activation_fn(opts.activation),
        )
        extra = context_dim or 0

        run = mixed_precision(net.apply, dtype_of(opts.compute_dtype))

        def apply(p, z, c, context=None):
            return run({"params": p}, z if context is None else jnp.concatenate([z, context]), c)

        init = lambda key: net.init(key, jnp.zeros((num_dims + extra,)), jnp.zeros(()))["params"]
        return init, apply, f"TimeMLP {opts.num_blocks} residual blocks x {opts.width} {opts.activation}"
    if len(event_shape) != 3:
        raise ValueError(
            f"diffusion models vectors (D,) or images (H, W, C); got examples of shape {event_shape}"
        )
    if context_dim:
        raise ValueError("conditional diffusion (context_dim) is implemented for vectors only")
    net = UNet(
        event_shape[-1],
        tuple(opts.unet_channels),
        embed_dim=opts.embed_dim,
        embed_scale=opts.embed_scale,
        attention=opts.unet_attention,
        patch=opts.unet_patch,
        num_res_blocks=opts.unet_res_blocks,
        conv_impl=opts.conv_impl,
    )
    init = lambda key: net.init(key, jnp.zeros((1, *event_shape)), jnp.zeros((1,)))["params"]
    run = mixed_precision(net.apply, dtype_of(opts.compute_dtype))
    apply = lambda p, z, c, context=None: run({"params": p}, z[None], c[None])[0]
    patches = f", on {opts.unet_patch}x{opts.unet_patch} patches" if opts.unet_patch > 1 else ""
    return init, apply, f"UNet channels {list(opts.unet_channels)} x {opts.unet_res_blocks} blocks{patches}"


def make_processes(opts: DiffusionOptions, sched, apply_net):
    """process_for(context) -> the `VPProcess` of one example (its context closed over; None: the
    unconditional process). The network sees the noise level normalized to about [0, 1]."""

    def gamma(params, t):
        return sched(params["schedule"], t)

    def process_for(context=None) -> VPProcess:
        def eps_g(params, z, g):
            c = (g - opts.gamma_min) / (opts.gamma_max - opts.gamma_min)
            return apply_net(params["net"], z, c, context)

        return VPProcess(gamma, eps_g)

    return process_for


def _split(batch):
    return (batch["x"], batch["context"]) if isinstance(batch, dict) else (batch, None)


def _per_example(fn, process_for, ctx, *arrays):
    """vmap `fn(process, *example)` over the batch, each example with its own context's process."""
    if ctx is None:
        process = process_for(None)
        return jax.vmap(lambda *a: fn(process, *a))(*arrays)
    return jax.vmap(lambda c, *a: fn(process_for(c), *a))(ctx, *arrays)


def make_loss(opts: DiffusionOptions, sched, process_for, num_dims: int):
    """(params, batch, key) -> (objective, metrics): the bound (or the simple MSE) over the batch,
    with antithetic times and the alpha^4 control variate (`diffusion_bound.diffusion_term`)."""
    encode = (lambda x: x) if opts.data == "continuous" else bound.encode_8bit

    def recon(process, params, x, eps0):
        if opts.data == "continuous":
            return bound.gaussian_reconstruction_term(process, params, num_dims)
        return bound.discretized_reconstruction_term(process, params, x, eps0)

    def loss_fn(params, batch, key):
        x, ctx = _split(batch)
        b = x.shape[0]
        k_t, k_eps, k_0 = jax.random.split(key, 3)
        t = jnp.mod(jax.random.uniform(k_t) + jnp.arange(b, dtype=jnp.float32) / b, 1.0)  # antithetic
        eps, eps0, xe = jax.random.normal(k_eps, x.shape), jax.random.normal(k_0, x.shape), encode(x)
        g, rate = jax.vmap(lambda t: process_for(None).gamma_and_rate(params, t))(t)
        mse = _per_example(
            lambda p, x, g, e: bound.noise_mse(p, params, x, g, e), process_for, ctx, xe, g, eps
        )
        diff = 0.5 * rate * (mse - jax.vmap(bound.control_variate)(g, eps))  # = bound.diffusion_term
        prior = _per_example(lambda p, x: bound.prior_term(p, params, x), process_for, ctx, xe)
        rec = _per_example(lambda p, x, e: recon(p, params, x, e), process_for, ctx, x, eps0)
        nll = jnp.mean(prior + diff - rec)
        objective = nll if opts.loss == "elbo" else jnp.mean(mse) / num_dims
        if opts.schedule == "learned" and opts.schedule_objective == "variance":
            objective = objective + _variance_surrogate(sched, process_for(None), params, xe, t, eps, diff)
        metrics = dict(
            elbo_nll=nll,
            prior=jnp.mean(prior),
            diffusion=jnp.mean(diff),
            reconstruction=jnp.mean(rec),
            mse_per_dim=jnp.mean(mse) / num_dims,
            gamma_0=sched(params["schedule"], jnp.zeros(())),
            gamma_1=sched(params["schedule"], jnp.ones(())),
        )
        if opts.data == "8bit":
            metrics["elbo_bpd"] = nats_to_bits_per_dim(nll, num_dims)
        return objective, metrics

    return loss_fn


def make_likelihoods(opts: DiffusionOptions, process_for, num_dims: int):
    """(bound log_prob with n times per example, ode_log_prob_and_nfe(params, x, key, ode_config,
    context=None))."""
    decoder = "gaussian" if opts.data == "continuous" else "discretized"

    def log_prob_with(params, x, key, num_t, context=None):
        keys = jax.random.split(key, x.shape[0])
        terms = lambda p, x, k: bound.elbo_terms(p, params, x, k, num_t, decoder)["elbo"]
        return _per_example(terms, process_for, context, x, keys)

    def ode_log_prob_and_nfe(params, x, key, ode_cfg: ODEConfig, context=None, probe_key=None):
        process = process_for(None)
        alpha0, _ = process.alpha_sigma(params, 0.0)
        k_u, k_probe = jax.random.split(key)
        k_probe = k_probe if probe_key is None else probe_key  # the probe drawn apart from the dequantization
        if opts.data == "8bit":  # uniform dequantization within each pixel's bin of width 2/256
            y = 2.0 * (jnp.round(x) + jax.random.uniform(k_u, x.shape)) / bound.NUM_VALUES_8BIT - 1.0
            log_bin = num_dims * math.log(2.0 / bound.NUM_VALUES_8BIT)
        else:
            y, log_bin = x, 0.0
        if context is None:
            vf = lambda z, t: process.ode_drift(params, z, t)
            lp, nfe = ode_log_prob(vf, standard_normal_log_prob, alpha0 * y, k_probe, ode_cfg)
        else:

            def one(z, c, k):
                vf = lambda z, t: process_for(c).ode_drift(params, z, t)
                lp, nfe = ode_log_prob(vf, standard_normal_log_prob, z[None], k, ode_cfg)
                return lp[0], nfe[0]

            lp, nfe = jax.vmap(one)(alpha0 * y, context, jax.random.split(k_probe, x.shape[0]))
        # x = z_0 / alpha_0 (times the bin width for 8-bit): change of variables
        return lp + num_dims * jnp.log(alpha0) + log_bin, nfe

    return log_prob_with, ode_log_prob_and_nfe


def make_samplers(opts: DiffusionOptions, process_for, event_shape: tuple[int, ...]):
    """(sample by the reverse SDE, sample by the ODE, decode z_0 to data)."""

    def decode(params, z0, key):
        """x ~ p(x | z_0): the Gaussian decoder, or the 256-way categorical per pixel (uint8)."""
        process = process_for(None)
        alpha0, _ = process.alpha_sigma(params, 0.0)
        if opts.data == "continuous":
            g0 = process.gamma(params, jnp.zeros(()))
            return z0 / alpha0 + jnp.exp(0.5 * g0) * jax.random.normal(key, z0.shape)
        logp = jax.vmap(lambda z: bound.discretized_log_probs(process, params, z))(z0)
        return jax.random.categorical(key, logp, axis=-1).astype(jnp.uint8)

    def sample(params, key, n, context=None):
        k_z, k_x = jax.random.split(key)
        if context is None:
            z0 = sde_sample(process_for(None), params, k_z, n, event_shape, opts.sample_steps, opts.sampler)
        else:
            one = lambda c, k: sde_sample(
                process_for(c), params, k, 1, event_shape, opts.sample_steps, opts.sampler
            )[0]
            z0 = jax.vmap(one)(context, jax.random.split(k_z, n))
        return decode(params, z0, k_x)

    def sample_ode(params, key, n, ode_cfg: ODEConfig):
        k_z, k_x = jax.random.split(key)
        z0, _ = ode_sample(process_for(None), params, k_z, n, event_shape, ode_cfg)
        return decode(params, z0, k_x)

    return sample, sample_ode, decode


def diffusion(
    event_shape: tuple[int, ...], name: str = "diffusion", context_dim: int | None = None, **options
) -> Model:
    """A continuous-time VP diffusion on the common Model surface; options are `DiffusionOptions`.

    Vectors (D,) use a residual `TimeMLP` (`width`, `num_blocks`); images (H, W, C) a `UNet`
    (`unet_channels`). Both see the noise level through sinusoids of `embed_scale` times the
    normalized gamma: 20 keeps the network smooth in time, so the adaptive ODE solver needs far fewer
    evaluations than with the usual 1000. `elbo_samples`: stratified times per example in `log_prob`.
    `sample_steps`, `sampler` ("ancestral" or "euler_maruyama"): `sample`. The ODE estimator uses
    `ode_*`, `divergence` ("exact", "hutchinson", or "auto": exact up to 16 dimensions) and `probe`.
    `grid_n`, `ode_grid_n`: cells a side of 2D density grids for the bound and the ODE.
    """
    event_shape = tuple(int(s) for s in event_shape)
    opts = DiffusionOptions(**options)
    num_dims = math.prod(event_shape)
    if context_dim and opts.schedule == "learned":
        raise ValueError("a learned schedule is not implemented for conditional diffusion")
    sched = SCHEDULES[opts.schedule](opts.gamma_min, opts.gamma_max)
    init_net, apply_net, arch = _network(opts, event_shape, context_dim)
    process_for = make_processes(opts, sched, apply_net)
    log_prob_with, ode_lp_nfe = make_likelihoods(opts, process_for, num_dims)

    def log_prob(params, x, key, context=None):
        return log_prob_with(params, x, key, opts.elbo_samples, context=context)

    sample, sample_ode, decode = make_samplers(opts, process_for, event_shape)
    ode_cfg = opts.ode_config(num_dims)

    def init(key, x):
        k_net, k_sched = jax.random.split(key)
        return {"net": init_net(k_net), "schedule": sched.init(k_sched)}

    def ode_log_prob_default(params, x, key, context=None):
        return ode_lp_nfe(params, x, key, ode_cfg, context=context)[0]

    ode_kind = Kind.EXACT if ode_cfg.divergence == "exact" and opts.data == "continuous" else Kind.ESTIMATE
    capabilities = [
        ProbabilityFlow(ode_lp_nfe, sample_ode, ode_cfg, process_for(None)),
        MonteCarloBound(opts.elbo_samples, log_prob_with),
    ]
    if opts.data == "8bit":
        capabilities.append(
            Dequantized(extra_noise="Hutchinson probe" if ode_cfg.divergence != "exact" else None)
        )
    info = dict(
        family="diffusion",
        architecture=f"VP diffusion, {opts.schedule} log-SNR schedule "
        f"[{opts.gamma_min}, {opts.gamma_max}], {arch}",
        objective=opts.loss,
        data=opts.data,
        grid_n=opts.grid_n,
        sample_steps=opts.sample_steps,
        sampler=opts.sampler,
        ode=dataclasses.asdict(ode_cfg),
    )
    return Model(
        name=name,
        event_shape=event_shape,
        kind=Kind.LOWER_BOUND,
        init=init,
        loss=make_loss(opts, sched, process_for, num_dims),
        log_prob=log_prob,
        sample=sample,
        info=info,
        estimators={"ode": Estimator(ode_kind, ode_log_prob_default, grid_n=opts.ode_grid_n)},
        capabilities=tuple(capabilities),
        internals={
            "process": process_for(None),
            "schedule": sched,
            "process_for": process_for,
            "decode_sample": decode,
        },
        context_shape=(context_dim,) if context_dim else None,
    )


diffusion.options_type = DiffusionOptions


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
