"""Energy-based models: log p~(x) = -E(x), trained without ever computing the normalizer.

    model = make_model("ebm_dsm", (2,))          # or make_model("ebm", (2,), objective="ssm")
    model.kind == Kind.UNNORMALIZED              # log_prob is -E(x): off by an unknown log Z
    normalized = with_log_z(model, log_z, se)    # gen_jax.likelihood: Kind.ESTIMATE with its se

Energy network: an MLP on vectors, a small conv net on images (H, W, C). Inputs are standardized
with the mean and scale of the example batch seen at init (kept fixed), and the energy adds a weak
quadratic, |z|^2 / (2 prior_scale^2) in standardized units, so that exp(-E) stays integrable
whatever the network does far from the data (a SiLU network grows only linearly).

8-bit images (`data="8bit"`, the default for images): the energy is a density on v = x + u, the
pixel values dequantized in gray-level units (u ~ U[0, 1)^D, bins of width 1), so with Z the
integral of exp(-E) over all of R^D,

    log P(x) >= E_u[ -E(x + u) ] - log Z                 (Jensen, as for every dequantized model)

with no offset: `log_prob(params, x, key)` is -E(x + u) with u drawn from `key`, the unnormalized
log-mass of the 8-bit image, and dividing by an estimate of Z (`gen_jax.likelihood.normalize`)
gives bits/dim comparable with every other model. For a fixed key, -E(v + u) is a translate of
-E(v), whose integral is the same Z: AIS run on `log_prob` with a fixed key estimates exactly it.

Objectives, each a pure loss on the model surface (`objective=`):
- "dsm": denoising score matching at one noise level sigma (Vincent 2011):
  E || sigma s(x + sigma eps) + eps ||^2 / 2, with s = grad log p~ = -grad E. Its optimum is the
  score of the data smoothed by N(0, sigma^2), so the density is that smoothed density.
- "dsm_ladder": the same over a geometric ladder of noise levels sigma_max .. sigma (Song & Ermon
  2019), with the sigma^2 weighting (hence the sigma inside the norm), for a noise-conditional
  energy E(x, sigma); log p~ is -E(x, sigma_min) and the ladder drives annealed Langevin sampling.
- "ssm": sliced score matching, variance-reduced form (Song et al. 2019):
  E_x E_v [ v^T (grad s(x)) v + |s(x)|^2 / 2 ], v ~ N(0, I), one Hessian-vector product per slice.
  It targets the score of the data itself.
- "naive_mle": maximise the raw log p~ of the data, mean E(x): what "just maximise likelihood"
  becomes without the normalizer. It diverges (the contrast experiment shows it).

`output="sigmoid"` swaps the energy for E = softplus(f(x)), i.e. p~ = sigmoid(-f(x)) in (0, 1): the
"sigmoid on the last layer" that is still not a distribution.

Samples: annealed importance sampling with resampling (`sampler="smc"`, any objective), or
annealed Langevin over the noise ladder (`sampler="annealed_langevin"`, dsm_ladder only).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.data.transforms import LogitTransform
from gen_jax.likelihood.ais import gaussian_base, smc_sample
from gen_jax.models.base import Kind, Model, check_batch
from gen_jax.nn.conv import Conv
from gen_jax.nn.mlp import MLP
from gen_jax.nn.mlp import activation as activation_fn
from gen_jax.nn.unet import UNet
from gen_jax.sampling.mcmc import annealed_langevin

OBJECTIVES = ("dsm", "dsm_ladder", "ssm", "naive_mle")


class EnergyMLP(nn.Module):
    """Scalar energy of vectors (batch, D); with `conditional`, also of the noise level log sigma."""

    hidden: Sequence[int]
    activation: Callable[[jax.Array], jax.Array] = nn.silu
    conditional: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, log_sigma: jax.Array) -> jax.Array:
        if self.conditional:
            x = jnp.concatenate([x, log_sigma[:, None]], axis=-1)
        return MLP(tuple(self.hidden), 1, self.activation)(x)[:, 0]


class EnergyConv(nn.Module):
    """Scalar energy of images (batch, H, W, C): 3x3 convolutions (stride 2 after the first),
    global average pooling, then a dense head; `conditional` adds log sigma as an input channel."""

    features: Sequence[int] = (32, 64)
    activation: Callable[[jax.Array], jax.Array] = nn.silu
    conditional: bool = False
    conv_impl: str = "auto"  # `gen_jax.nn.conv.conv2d`: im2col on CPU, lax.conv elsewhere

    @nn.compact
    def __call__(self, x: jax.Array, log_sigma: jax.Array) -> jax.Array:
        if self.conditional:
            plane = jnp.broadcast_to(log_sigma[:, None, None, None], (*x.shape[:-1], 1))
            x = jnp.concatenate([x, plane], axis=-1)
        for i, width in enumerate(self.features):
            strides = (1, 1) if i == 0 else (2, 2)
            x = self.activation(Conv(width, (3, 3), strides=strides, impl=self.conv_impl)(x))
        x = jnp.mean(x, axis=(1, 2))
        x = self.activation(nn.Dense(self.features[-1])(x))
        return nn.Dense(1)(x)[:, 0]


class EnergyUNet(nn.Module):
    """A noise-conditional energy of images built on the diffusion U-Net (`gen_jax.nn.unet`).

    The U-Net is a preconditioned denoiser (Karras et al. 2022): for standardized images z at
    noise level s (standardized units), D(z) = c_skip z + c_out net(c_in z, level) with
    c_skip = 1 / (s^2 + 1), c_out = s / sqrt(s^2 + 1), c_in = 1 / sqrt(s^2 + 1). The energy is the
    denoising autoencoder's reconstruction error (Salimans & Ho 2021),

        E(z, s) = |z - D(z)|^2 / (2 s^2) = |s z / (s^2 + 1) - net / sqrt(s^2 + 1)|^2 / 2  >= 0,

    whose gradient is the denoiser's score (z - D) / s^2 where the denoiser's Jacobian is the
    projection onto the data's tangent directions. Being a sum of squares it is bounded below, so
    with the model's weak quadratic exp(-E) always integrates to a finite Z, which AIS can then
    estimate: the inner product <z, z - D> / 2 s^2, exact for Gaussian data, is not bounded below
    and a trained one had wells far below the data that AIS kept finding (log Z 6,759 at 200
    temperatures, 35,134 at 1,000). `level` in [0, 1] is log sigma rescaled over the training
    range (the time embedding's input).
    """

    channels: Sequence[int] = (32, 64)
    patch: int = 2
    attention: bool = True
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, z: jax.Array, level: jax.Array, s: jax.Array) -> jax.Array:
        s = s.reshape(-1, 1, 1, 1)
        c_in = jax.lax.rsqrt(s**2 + 1)
        net = UNet(z.shape[-1], tuple(self.channels), attention=self.attention, patch=self.patch,
                   conv_impl=self.conv_impl)(c_in * z, level)  # fmt: skip
        residual = s * c_in**2 * z - c_in * net  # (z - D(z)) / s
        return 0.5 * jnp.sum(residual**2, axis=tuple(range(1, z.ndim)))


def noise_ladder(sigma_min: float, sigma_max: float, num: int) -> np.ndarray:
    """Geometric ladder of noise levels, largest first."""
    if not 0 < sigma_min < sigma_max or num < 2:
        raise ValueError(f"need 0 < sigma_min < sigma_max and num >= 2, got {sigma_min}, {sigma_max}, {num}")
    return np.geomspace(sigma_max, sigma_min, num).astype(np.float32)


def ebm(
    event_shape: tuple[int, ...],
    objective: str = "dsm",
    hidden: Sequence[int] = (128, 128),
    activation: str = "silu",
    conv_features: Sequence[int] = (32, 64),
    sigma: float = 0.1,
    sigma_max: float = 1.0,
    num_sigmas: int = 10,
    ssm_projections: int = 1,
    prior_scale: float = 3.0,
    output: str = "energy",
    sampler: str = "smc",
    sample_temps: int = 200,
    sample_rejuvenation: int = 10,
    sample_step_scale: float = 0.3,
    sample_steps_per_level: int = 100,
    data: str | None = None,
    conv_impl: str = "auto",
    energy_net: str = "auto",
    unet_channels: Sequence[int] = (32, 64),
    unet_patch: int = 2,
    unet_attention: bool = True,
    continuous_sigma: bool = False,
    logit_alpha: float | None = None,
    quadratic: str = "isotropic",
    correction_bound: float | None = None,
    time_score_weight: float = 0.0,
    name: str | None = None,
) -> Model:
    """An energy-based model on vectors (D,) or images (H, W, C); see the module docstring.

    sigma: the (smallest) noise level of DSM, in data units (gray levels for 8-bit images);
    sigma_max, num_sigmas: the ladder. prior_scale: width of the confining quadratic in
    standardized units. data: "continuous" (default for vectors) or "8bit" (default for images:
    dequantized pixel values, see the module docstring). energy_net: "mlp" (vectors), "conv" or
    "unet" (images: `EnergyUNet`, noise-conditional, for objective "dsm_ladder"); "auto" picks
    mlp / conv. continuous_sigma: "dsm_ladder" draws each example's noise level log-uniformly from
    [sigma, sigma_max] instead of from the `num_sigmas` rungs (the energy is then trained at every
    level that its AIS noise path visits).
    logit_alpha (8-bit data): the energy is a density of z = logit(a + (1 - 2a) (x + u) / 256), the
    dequantized image on the logit scale (as Glow's), and log_prob adds log |dz/dv| (no offsets by
    hand: `gen_jax.data.transforms`); sigma and sigma_max are then in logit units.
    quadratic: the energy's quadratic term. "isotropic": |z|^2 / (2 prior_scale^2) in standardized
    units, a weak confinement. "gaussian": the Gaussian of the init examples (full covariance, in the
    energy's space) smoothed at the noise level, (y - m)^T (C + sigma^2 I)^-1 (y - m) / 2, the
    optimum of denoising score matching among quadratic energies, so the network learns only what
    a Gaussian misses; AIS then runs in the coordinates that whiten it (`parts["ais_gaussian"]`).
    The Gaussian term includes its normalizer, E = -log N(y; m, C + sigma^2 I) when the network is
    zero: log Z = 0 at every noise level.
    correction_bound: B > 0 bounds the network's term to (-B, B) (B tanh(f / B)): then
    |log Z - log Z_quadratic| < B whatever the network learned, a bracket AIS must land in, and no
    well of the network away from the data can hold more than e^B times the quadratic's mass.
    time_score_weight (dsm_ladder): w > 0 adds the noise level's own denoising target ("dual" score
    matching, Guth et al. 2025): with t = sigma^2, d/dt log p_t(y) = E[(|eps|^2 - D) / 2t | y] for
    y = x + sigma eps, so the loss adds w (sigma dE/dsigma + |eps|^2 - D)^2 / 2D. Spatial DSM fixes
    E at each level only up to a constant per connected region of the data; this term ties the
    levels to each other, so the energy at the smallest noise level is pinned wherever some level's
    noisy data reach, and log Z(sigma) stays (ideally) constant along the noise path.
    """
    event_shape = tuple(event_shape)
    data = data or ("8bit" if len(event_shape) == 3 else "continuous")
    if data not in ("continuous", "8bit"):
        raise ValueError(f"unknown EBM data type {data!r}; choose 'continuous' or '8bit'")
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown EBM objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    if output not in ("energy", "sigmoid"):
        raise ValueError(f"unknown EBM output {output!r}; choose 'energy' or 'sigmoid'")
    if sampler not in ("smc", "annealed_langevin"):
        raise ValueError(f"unknown EBM sampler {sampler!r}; choose 'smc' or 'annealed_langevin'")
    if correction_bound is not None and not correction_bound > 0:
        raise ValueError(f"correction_bound must be > 0 (None: unbounded network), got {correction_bound}")
    if quadratic not in ("isotropic", "gaussian"):
        raise ValueError(f"unknown quadratic {quadratic!r}; choose 'isotropic' or 'gaussian'")
    if time_score_weight and objective != "dsm_ladder":
        raise ValueError("time_score_weight needs the noise-conditional energy of objective='dsm_ladder'")
    if logit_alpha is not None and data != "8bit":
        raise ValueError("logit_alpha applies to 8-bit data (data='8bit')")
    if sampler == "annealed_langevin" and objective != "dsm_ladder":
        raise ValueError("annealed Langevin needs the noise-conditional energy of objective='dsm_ladder'")
    conditional = objective == "dsm_ladder"
    act = activation_fn(activation)
    if energy_net == "auto":
        energy_net = "mlp" if len(event_shape) == 1 else "conv"
    if energy_net not in ("mlp", "conv", "unet"):
        raise ValueError(f"unknown energy_net {energy_net!r}; choose 'mlp', 'conv' or 'unet'")
    if len(event_shape) == 1 and energy_net == "mlp":
        net = EnergyMLP(tuple(hidden), act, conditional)
        arch = f"energy MLP {list(hidden)} {activation}"
        stat_axes: tuple[int, ...] = (0,)
    elif len(event_shape) == 3 and energy_net == "conv":
        net = EnergyConv(tuple(conv_features), act, conditional, conv_impl)
        arch = f"energy conv {list(conv_features)} {activation}"
        stat_axes = tuple(range(4))  # one mean and scale for all pixels
    elif len(event_shape) == 3 and energy_net == "unet":
        if not conditional:
            raise ValueError("energy_net='unet' is noise-conditional: use objective='dsm_ladder'")
        net = EnergyUNet(tuple(unet_channels), unet_patch, unet_attention, conv_impl)
        arch = f"energy |z - D(z)|^2 / 2s^2, D a U-Net {list(unet_channels)}" + (
            f" on {unet_patch}x{unet_patch} patches" if unet_patch > 1 else ""
        )
        stat_axes = tuple(range(4))
    else:
        raise ValueError(
            f"energy_net={energy_net!r} does not take examples of shape {event_shape}: 'mlp' models "
            "vectors (D,), 'conv' and 'unet' images (H, W, C)"
        )
    sigmas = noise_ladder(sigma, sigma_max, num_sigmas) if conditional else np.asarray([sigma], np.float32)
    sigma_min = float(sigmas[-1])
    log_range = (math.log(sigma_min), math.log(float(sigmas[0])))

    num_dims = math.prod(event_shape)
    # a bounded correction on a normalized Gaussian: E = f - log N, |f| < B, so |log Z| < B
    bracketed = quadratic == "gaussian" and correction_bound is not None and output == "energy"
    logit = LogitTransform(logit_alpha) if logit_alpha is not None else None

    def to_space(x, key):
        """(y, log |dy/dv| summed per example): the continuous variable the energy is a density
        of, from data x (a batch): x itself; 8-bit values dequantized, v = x + u; or their logits."""
        if data == "continuous":
            return x, jnp.zeros(x.shape[:1], jnp.float32)
        if key is None:
            raise ValueError(
                f"{name or 'ebm'}.log_prob needs a PRNG key: it dequantizes the 8-bit images (v = x + u)"
            )
        v = x.astype(jnp.float32) + jax.random.uniform(key, x.shape, jnp.float32)
        if logit is None:
            return v, jnp.zeros(x.shape[:1], jnp.float32)
        y, log_det = logit.forward_and_log_det(v / 256.0)  # per pixel: log |dz/d(v / 256)|
        return y, jnp.sum(log_det.reshape(x.shape[0], -1), axis=1) - num_dims * math.log(256.0)

    def from_space(y):
        """Continuous values back to data: 8-bit bins (the inverse of `to_space`'s map)."""
        if data == "continuous":
            return y
        v = y if logit is None else 256.0 * logit.inverse(y)
        return jnp.clip(jnp.floor(v), 0, 255).astype(jnp.uint8)

    def init(key, x):
        check_batch(x, event_shape, "example batch")
        y = to_space(jnp.asarray(x), jax.random.fold_in(key, 7))[0].astype(jnp.float32)
        mean = jnp.mean(y, axis=stat_axes)
        scale = jnp.maximum(jnp.std(y, axis=stat_axes), 1e-3)
        dummy = jnp.zeros((1, *event_shape), jnp.float32)
        extra = (jnp.ones((1,)),) if energy_net == "unet" else ()
        net_params = net.init(key, dummy, jnp.zeros((1,)), *extra)["params"]
        params = {"net": net_params, "stats": {"mean": mean, "scale": scale}}
        if quadratic == "gaussian":  # the init examples' Gaussian, by eigendecomposition
            flat = y.reshape(y.shape[0], -1)
            m = jnp.mean(flat, axis=0)
            centred = flat - m[None]
            cov = centred.T @ centred / max(flat.shape[0] - 1, 1)
            # few examples for the dimension (a smoke run): shrink toward the diagonal, weight
            # min(1, D/n)^2 (1.7e-4 for Fashion-MNIST's 60,000 images), so that test images do not
            # fall off a rank-deficient covariance
            lam = min(1.0, num_dims / flat.shape[0]) ** 2
            cov = (1 - lam) * cov + lam * jnp.diag(jnp.diag(cov))
            evals, evecs = jnp.linalg.eigh(cov)
            evals = jnp.maximum(evals, 1e-6 * jnp.mean(evals))
            params["gaussian"] = {"mean": m, "evecs": evecs, "evals": evals}
        return params

    def quadratic_energy(params, y, z, sigma_level):
        if quadratic == "isotropic":
            return 0.5 * jnp.sum(z**2) / prior_scale**2
        g = jax.lax.stop_gradient(params["gaussian"])
        c = g["evecs"].T @ (y.reshape(-1) - g["mean"])
        var = g["evals"] + jnp.asarray(sigma_level, jnp.float32) ** 2
        return 0.5 * jnp.sum(c**2 / var + jnp.log(2 * jnp.pi * var))  # -log N(y; m, C + sigma^2 I)

    def ais_gaussian(params, sigma_level=None):
        """(mean, orthogonal U, scales): the energy's Gaussian at `sigma_level` (default: the
        smallest) is y = mean + U (scales * w) with w ~ N(0, I), flattened; AIS whitens with it."""
        g = params["gaussian"]
        sig = jnp.asarray(sigma_min if sigma_level is None else sigma_level, jnp.float32)
        return g["mean"], g["evecs"], jnp.sqrt(g["evals"] + sig**2)

    def energy(params, x, sigma_level=sigma_min):
        """E(x) of ONE example (at noise level `sigma_level` for the noise-conditional energy)."""
        stats = jax.lax.stop_gradient(params["stats"])
        z = (x - stats["mean"]) / stats["scale"]
        log_sigma = jnp.log(jnp.asarray(sigma_level, jnp.float32))
        if energy_net == "unet":  # the level rescaled to [0, 1], and sigma in standardized units
            level = (log_sigma - log_range[0]) / (log_range[1] - log_range[0])
            s = jnp.asarray(sigma_level, jnp.float32) / stats["scale"]
            f = net.apply({"params": params["net"]}, z[None], level[None], jnp.reshape(s, (1,)))[0]
        else:
            f = net.apply({"params": params["net"]}, z[None], log_sigma[None])[0]
        if output == "sigmoid":
            return jax.nn.softplus(f)
        if correction_bound is not None:
            f = correction_bound * jnp.tanh(f / correction_bound)
        return f + quadratic_energy(params, x, z, sigma_level)

    def score(params, x, sigma_level=sigma_min):
        return -jax.grad(energy, argnums=1)(params, x, sigma_level)

    def log_prob(params, x, key=None):
        y, log_det = to_space(x, key)
        return log_det - jax.vmap(lambda yi: energy(params, yi))(y)

    def dsm_one(params, x, key, sig):
        eps = jax.random.normal(key, x.shape)
        if not time_score_weight:
            return 0.5 * jnp.sum((sig * score(params, x + sig * eps, sig) + eps) ** 2)
        grad_y, grad_sigma = jax.grad(energy, argnums=(1, 2))(params, x + sig * eps, sig)  # one pass
        spatial = 0.5 * jnp.sum((eps - sig * grad_y) ** 2)
        temporal = 0.5 * (sig * grad_sigma + jnp.sum(eps**2) - num_dims) ** 2 / num_dims
        return spatial + time_score_weight * temporal

    def ssm_one(params, x, key):
        def slice_(v):
            s, hv = jax.jvp(lambda y: score(params, y), (x,), (v,))
            return jnp.sum(v * hv) + 0.5 * jnp.sum(s**2)

        vs = jax.random.normal(key, (ssm_projections, *x.shape))
        return jnp.mean(jax.vmap(slice_)(vs))

    def loss(params, batch, key):
        n = batch.shape[0]
        batch = to_space(batch, jax.random.fold_in(key, 2))[0]
        keys = jax.random.split(key, n)
        if objective == "dsm":
            per = jax.vmap(lambda x, k: dsm_one(params, x, k, sigma_min))(batch, keys)
        elif objective == "dsm_ladder":
            if continuous_sigma:
                u = jax.random.uniform(jax.random.fold_in(key, 1), (n,))
                sig = jnp.exp(log_range[0] + u * (log_range[1] - log_range[0]))
            else:
                idx = jax.random.randint(jax.random.fold_in(key, 1), (n,), 0, len(sigmas))
                sig = jnp.asarray(sigmas)[idx]
            per = jax.vmap(lambda x, k, s: dsm_one(params, x, k, s))(batch, keys, sig)
        elif objective == "ssm":
            per = jax.vmap(lambda x, k: ssm_one(params, x, k))(batch, keys)
        else:  # naive_mle: -mean log p~ of the data, no normalizer
            per = jax.vmap(lambda x: energy(params, x))(batch)
        value = jnp.mean(per)
        return value, {objective: value}

    def sample(params, key, n):
        stats = params["stats"]
        mean = jnp.broadcast_to(stats["mean"], event_shape)
        if sampler == "annealed_langevin":
            noise = jax.random.normal(jax.random.fold_in(key, 0), (n, *event_shape))
            if quadratic == "gaussian":  # start in the energy's own Gaussian at the largest level
                m, u, sc = ais_gaussian(params, float(sigmas[0]))
                x0 = (m[None] + (noise.reshape(n, -1) * sc[None]) @ u.T).reshape(n, *event_shape)
            else:
                x0 = mean[None] + float(sigmas[0]) * noise
            score_fn = lambda x, s: score(params, x, s)
            v = annealed_langevin(
                score_fn, x0, key, jnp.asarray(sigmas), sample_step_scale, sample_steps_per_level
            ).positions
        else:
            base = gaussian_base(mean, 1.5 * jnp.broadcast_to(stats["scale"], event_shape))
            v = smc_sample(
                lambda x: -energy(params, x),
                base,
                key,
                n,
                sample_temps,
                rejuvenation_steps=sample_rejuvenation,
            )
        return from_space(v)  # 8-bit data: the bin each dequantized value falls in

    info = dict(
        family="ebm",
        objective=objective,
        architecture=arch + (" + quadratic" if output == "energy" else ""),
        data=data,
        output=output,
        sigma=sigma_min if objective.startswith("dsm") else None,
        sigma_max=float(sigmas[0]) if conditional else None,
        num_sigmas=len(sigmas) if conditional else None,
        sampler=sampler,
        support="real",
        energy_net=energy_net,
        continuous_sigma=continuous_sigma if conditional else None,
        logit_alpha=logit_alpha,
        quadratic=quadratic,
        correction_bound=correction_bound,
        time_score_weight=time_score_weight if conditional else None,
        # the noise path AIS anneals along (`gen_jax.likelihood.normalize`): log_prob_at below
        noise_range=(sigma_min, float(sigmas[0])) if conditional else None,
    )
    default_name = {"dsm": "ebm_dsm", "dsm_ladder": "ebm_dsm_ladder", "ssm": "ebm_ssm"}.get(objective, "ebm")
    return Model(
        name=name or default_name,
        event_shape=event_shape,
        kind=Kind.UNNORMALIZED,
        init=init,
        loss=loss,
        log_prob=log_prob,
        sample=sample,
        info=info,
        parts={
            "energy": energy,
            "score": score,
            "sigmas": sigmas,
            "network": net,
            # unnormalized log-density of one example in the energy's space (to_continuous's)
            "log_prob_at": lambda params, v, sigma=None: (
                -energy(params, v, sigma_min if sigma is None else sigma)
            ),
            "to_continuous": lambda x, key: to_space(x, key)[0],
            **({"ais_gaussian": ais_gaussian} if quadratic == "gaussian" else {}),
            # log Z at the smallest noise level lies in this interval whatever the network learned
            **({"log_z_bracket": (-correction_bound, correction_bound)} if bracketed else {}),
        },
    )


def ebm_dsm(event_shape, **kwargs) -> Model:
    """Registry entry "ebm_dsm": denoising score matching at one noise level."""
    return ebm(event_shape, **{"objective": "dsm", **kwargs})


def ebm_dsm_ladder(event_shape, **kwargs) -> Model:
    """Registry entry "ebm_dsm_ladder": DSM over a geometric noise ladder (noise-conditional energy)."""
    return ebm(event_shape, **{"objective": "dsm_ladder", **kwargs})


def ebm_ssm(event_shape, **kwargs) -> Model:
    """Registry entry "ebm_ssm": sliced score matching (variance-reduced)."""
    return ebm(event_shape, **{"objective": "ssm", **kwargs})


def ebm_naive_mle(event_shape, **kwargs) -> Model:
    """Registry entry "ebm_naive_mle": raw log p~ maximised without a normalizer (diverges)."""
    return ebm(event_shape, **{"objective": "naive_mle", "name": "ebm_naive_mle", **kwargs})
