"""Energy-based models: log p~(x) = -E(x), trained without ever computing the normalizer.

    model = make_model("ebm_dsm", (2,))          # or make_model("ebm", (2,), objective="ssm")
    model.kind == Kind.UNNORMALIZED              # log_prob is -E(x): off by an unknown log Z
    normalized = with_log_z(model, log_z, se)    # gen_jax.likelihood.normalize: Kind.ESTIMATE

Energy network: an MLP on vectors (`energy_net="fourier"`: on random Fourier features of them), a
small conv net or a U-Net denoiser on images (H, W, C) (`gen_jax.nn.energy`). Inputs are standardized
with the mean and scale of the example batch seen at init (kept fixed), and the energy adds a
quadratic term so that exp(-E) stays integrable whatever the network does far from the data: a weak
isotropic one, or the example batch's own Gaussian.

8-bit images (`data="8bit"`, the default for images): the energy is a density of v = x + u, the
pixel values dequantized (u ~ U[0, 1)^D), or of their logits (`logit_alpha`), so with Z the integral
of exp(-E) over that space, log P(x) >= E_u[ -E(y(x + u)) + log |dy/dv| ] - log Z (Jensen) with no
offset: `log_prob(params, x, key)` is the bracket for one u drawn from `key`.

Objectives (`objective=`), each a pure loss on the model surface:
- "dsm": denoising score matching at one noise level sigma (Vincent 2011), whose optimum is the score
  of the data smoothed by N(0, sigma^2);
- "dsm_ladder": the same over a ladder of noise levels with the sigma^2 weighting (Song & Ermon
  2019), for a noise-conditional energy E(x, sigma); log p~ is -E(x, sigma_min);
- "ssm": sliced score matching, variance-reduced (Song et al. 2019), the score of the data itself;
- "naive_mle": maximise the raw log p~ of the data: what "just maximise likelihood" becomes without
  the normalizer. It diverges (the contrast experiment shows it).
- "nce": noise-contrastive estimation (Gutmann & Hyvarinen 2010): log Z is a parameter, learned by
  classifying the data against `nce_ratio` times as many samples of a normalized noise model fitted
  at init (`nce_noise`: the data's Gaussian, or a mixture fitted by EM; widened by `nce_noise_scale`);
  the learned log Z is a claim to check (`LearnedLogZ`);
- "cd": contrastive divergence with persistent short-run Langevin chains (MCMC maximum likelihood, Du &
  Mordatch 2019; Nijkamp et al. 2019): the gradient of mean E(data) - mean E(chains), `cd_chains`
  chains advanced `cd_steps` Langevin steps per optimizer step (a fraction `cd_reinit` restarted from
  the data's Gaussian), with Du & Mordatch's penalty cd_reg (E(data)^2 + E(chains)^2).
`output="sigmoid"` swaps the energy for softplus(f(x)), i.e. p~ = sigmoid(-f(x)) in (0, 1): the
"sigmoid on the last layer" that is still not a distribution.

Capabilities (`gen_jax.core.capabilities`): `ContinuousSpace` (the space the energy is a density of),
`NoisePath` (noise-conditional energies), `GaussianTerm` (quadratic="gaussian") and
`BoundedCorrection` (correction_bound=B: log Z in (-B, B) for certain). Samples: annealed importance
sampling with resampling (`sampler="smc"`) or annealed Langevin over the ladder (dsm_ladder).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.core import Kind, Model, check_batch
from gen_jax.core.capabilities import (
    BoundedCorrection,
    ContinuousSpace,
    GaussianTerm,
    LearnedLogZ,
    NoisePath,
    ShortRunSampler,
)
from gen_jax.core.model import AuxState
from gen_jax.data.transforms import LogitTransform
from gen_jax.models.baselines import em_fit
from gen_jax.nn.energy import EnergyConv, EnergyMLP, EnergyUNet
from gen_jax.nn.mlp import activation as activation_fn
from gen_jax.nn.mlp import compute_dtype as dtype_of
from gen_jax.nn.mlp import mixed_precision
from gen_jax.sampling.anneal import gaussian_base, smc_sample
from gen_jax.sampling.mcmc import annealed_langevin

FOURIER_FEATURES = 64  # energy_net="fourier": the MLP on z and sin / cos of z W, W ~ N(0, 1), z standardized
OBJECTIVES = ("dsm", "dsm_ladder", "ssm", "naive_mle", "nce", "cd")
CHOICES = {
    "objective": OBJECTIVES,
    "output": ("energy", "sigmoid"),
    "sampler": ("smc", "annealed_langevin"),
    "quadratic": ("isotropic", "gaussian"),
    "data": (None, "continuous", "8bit"),
    "energy_net": ("auto", "mlp", "fourier", "conv", "unet"),
    "nce_noise": ("gaussian", "gmm"),
}


@dataclasses.dataclass(frozen=True)
class EBMOptions:
    """Every option of `ebm` (see its docstring); validated on construction."""

    objective: str = "dsm"
    hidden: tuple[int, ...] = (128, 128)
    activation: str = "silu"
    conv_features: tuple[int, ...] = (32, 64)
    sigma: float = 0.1
    sigma_max: float = 1.0
    num_sigmas: int = 10
    ssm_projections: int = 1
    prior_scale: float = 3.0
    output: str = "energy"
    sampler: str = "smc"
    sample_temps: int = 200
    sample_rejuvenation: int = 10
    sample_step_scale: float = 0.3
    sample_steps_per_level: int = 100
    data: str | None = None
    conv_impl: str = "auto"
    energy_net: str = "auto"
    unet_channels: tuple[int, ...] = (32, 64)
    unet_patch: int = 2
    unet_attention: bool = True
    continuous_sigma: bool = False
    logit_alpha: float | None = None
    quadratic: str = "isotropic"
    correction_bound: float | None = None
    time_score_weight: float = 0.0
    nce_ratio: int = 4
    nce_noise: str = "gaussian"
    nce_noise_components: int = 10
    nce_noise_scale: float = 1.2
    cd_chains: int = 512
    cd_steps: int = 20
    cd_step_size: float = 0.01
    cd_reinit: float = 0.05
    cd_reg: float = 0.1
    compute_dtype: str = "float32"  # "bfloat16": the energy network in bfloat16 (energies in float32)

    def __post_init__(self):
        for field, allowed in CHOICES.items():
            if getattr(self, field) not in allowed:
                raise ValueError(f"unknown EBM {field} {getattr(self, field)!r}; choose one of {allowed}")
        if self.correction_bound is not None and not self.correction_bound > 0:
            raise ValueError(f"correction_bound must be > 0 (None: unbounded), got {self.correction_bound}")
        if self.correction_bound is not None and self.output != "energy":
            raise ValueError("correction_bound bounds the network term of output='energy'; drop it")
        if self.nce_ratio < 1 or self.nce_noise_scale <= 0 or self.cd_steps < 1 or self.cd_chains < 1:
            raise ValueError("need nce_ratio >= 1, nce_noise_scale > 0, cd_steps >= 1 and cd_chains >= 1")
        if not (self.cd_step_size > 0 and 0 <= self.cd_reinit <= 1):
            raise ValueError("need cd_step_size > 0 and cd_reinit in [0, 1]")
        needs_ladder = {
            "time_score_weight": bool(self.time_score_weight),
            "annealed Langevin sampling": self.sampler == "annealed_langevin",
            "energy_net='unet'": self.energy_net == "unet",
        }
        for what, used in needs_ladder.items():
            if used and not self.conditional:
                raise ValueError(f"{what} needs the noise-conditional energy of objective='dsm_ladder'")

    @property
    def conditional(self) -> bool:
        """Whether the energy is noise-conditional, E(x, sigma)."""
        return self.objective == "dsm_ladder"

    def sigmas(self) -> np.ndarray:
        """The noise ladder, largest first (one level for single-level objectives)."""
        if self.conditional:
            return noise_ladder(self.sigma, self.sigma_max, self.num_sigmas)
        return np.asarray([self.sigma], np.float32)


def noise_ladder(sigma_min: float, sigma_max: float, num: int) -> np.ndarray:
    """Geometric ladder of noise levels, largest first."""
    if not 0 < sigma_min < sigma_max or num < 2:
        raise ValueError(f"need 0 < sigma_min < sigma_max and num >= 2, got {sigma_min}, {sigma_max}, {num}")
    return np.geomspace(sigma_max, sigma_min, num).astype(np.float32)


# ----------------------------------------------------------------------------- the space of the energy


@dataclasses.dataclass(frozen=True)
class EnergySpace:
    """From data x to the continuous variable y the energy is a density of, and back.

    "continuous": y = x. "8bit": y = v = x + u (dequantized gray levels), or with `logit_alpha`
    y = logit(a + (1 - 2a) v / 256); `forward` returns log |dy/dv| per example with y.
    """

    data: str
    logit_alpha: float | None
    num_dims: int

    def forward(self, x, key):
        """(y, log |dy/dx| per example) for a batch x; 8-bit data are dequantized with `key`."""
        if self.data == "continuous":
            return x, jnp.zeros(x.shape[:1], jnp.float32)
        if key is None:
            raise ValueError("an 8-bit energy model's log_prob needs a PRNG key: it dequantizes v = x + u")
        v = x.astype(jnp.float32) + jax.random.uniform(key, x.shape, jnp.float32)
        if self.logit_alpha is None:
            return v, jnp.zeros(x.shape[:1], jnp.float32)
        y, log_det = LogitTransform(self.logit_alpha).forward_and_log_det(v / 256.0)
        return y, jnp.sum(log_det.reshape(x.shape[0], -1), axis=1) - self.num_dims * math.log(256.0)

    def inverse(self, y):
        """Continuous values back to data: the 8-bit bin each dequantized value falls in."""
        if self.data == "continuous":
            return y
        v = y if self.logit_alpha is None else 256.0 * LogitTransform(self.logit_alpha).inverse(y)
        return jnp.clip(jnp.floor(v), 0, 255).astype(jnp.uint8)


# ----------------------------------------------------------------------------- the energy


def _network(opts: EBMOptions, event_shape: tuple[int, ...]):
    """(flax module, architecture string, axes of the standardization statistics)."""
    kind = opts.energy_net
    if kind == "auto":
        kind = "mlp" if len(event_shape) == 1 else "conv"
    act = activation_fn(opts.activation)
    if len(event_shape) == 1 and kind in ("mlp", "fourier"):
        features = FOURIER_FEATURES if kind == "fourier" else 0
        arch = f"energy MLP {list(opts.hidden)} {opts.activation}" + (
            f" on {features} random Fourier features" if features else ""
        )
        return EnergyMLP(tuple(opts.hidden), act, opts.conditional, features), arch, (0,)
    if len(event_shape) == 3 and kind == "conv":
        arch = f"energy conv {list(opts.conv_features)} {opts.activation}"
        return (
            EnergyConv(tuple(opts.conv_features), act, opts.conditional, opts.conv_impl),
            arch,
            (0, 1, 2, 3),
        )
    if len(event_shape) == 3 and kind == "unet":
        net = EnergyUNet(tuple(opts.unet_channels), opts.unet_patch, opts.unet_attention, opts.conv_impl)
        arch = f"energy |z - D(z)|^2 / 2s^2, D a U-Net {list(opts.unet_channels)}"
        return net, arch, (0, 1, 2, 3)
    raise ValueError(
        f"energy_net={opts.energy_net!r} does not take examples of shape {event_shape}: 'mlp' and 'fourier' "
        "model vectors (D,), 'conv' and 'unet' images (H, W, C)"
    )


def _gaussian_moments(y: jax.Array, num_dims: int) -> dict:
    """The example batch's Gaussian (full covariance, by eigendecomposition), flattened. With few
    examples for the dimension the covariance shrinks toward its diagonal (weight min(1, D/n)^2), so
    test points do not fall off a rank-deficient covariance."""
    flat = y.reshape(y.shape[0], -1)
    m = jnp.mean(flat, axis=0)
    centred = flat - m[None]
    cov = centred.T @ centred / max(flat.shape[0] - 1, 1)
    lam = min(1.0, num_dims / flat.shape[0]) ** 2
    cov = (1 - lam) * cov + lam * jnp.diag(jnp.diag(cov))
    evals, evecs = jnp.linalg.eigh(cov)
    return {"mean": m, "evecs": evecs, "evals": jnp.maximum(evals, 1e-6 * jnp.mean(evals))}


@dataclasses.dataclass(frozen=True, eq=False)
class Energy:
    """E(params, y, sigma) of ONE example y of the energy's space, and what is derived from it."""

    opts: EBMOptions
    net: object
    sigma_min: float
    sigma_max: float

    def __call__(self, params, y, sigma=None):
        """The energy of one example at noise level sigma (default: the smallest)."""
        sigma = jnp.asarray(self.sigma_min if sigma is None else sigma, jnp.float32)
        stats = jax.lax.stop_gradient(params["stats"])
        z = (y - stats["mean"]) / stats["scale"]
        f = self._network_term(params, z, sigma, stats["scale"])
        if self.opts.output == "sigmoid":
            return jax.nn.softplus(f)
        if self.opts.correction_bound is not None:
            f = self.opts.correction_bound * jnp.tanh(f / self.opts.correction_bound)
        return f + self._quadratic(params, y, z, sigma)

    def _network_term(self, params, z, sigma, scale):
        apply = mixed_precision(self.net.apply, dtype_of(self.opts.compute_dtype))
        log_sigma = jnp.log(sigma)
        if isinstance(self.net, EnergyUNet):  # the level rescaled to [0, 1], sigma in standardized units
            lo, hi = math.log(self.sigma_min), math.log(self.sigma_max)
            level = (log_sigma - lo) / (hi - lo)
            return apply({"params": params["net"]}, z[None], level[None], jnp.reshape(sigma / scale, (1,)))[0]
        return apply({"params": params["net"]}, z[None], log_sigma[None])[0]

    def _quadratic(self, params, y, z, sigma):
        if self.opts.quadratic == "isotropic":
            return 0.5 * jnp.sum(z**2) / self.opts.prior_scale**2
        g = jax.lax.stop_gradient(params["gaussian"])
        c = g["evecs"].T @ (y.reshape(-1) - g["mean"])
        var = g["evals"] + sigma**2
        return 0.5 * jnp.sum(c**2 / var + jnp.log(2 * jnp.pi * var))  # -log N(y; m, C + sigma^2 I)

    def score(self, params, y, sigma=None):
        """grad_y log p~(y) = -grad_y E."""
        return -jax.grad(self.__call__, argnums=1)(params, y, sigma)

    def moments(self, params, sigma=None):
        """(m, U, s): the energy's Gaussian term at noise level sigma, N(m, U diag(s^2) U^T), flattened."""
        g = params["gaussian"]
        sig = jnp.asarray(self.sigma_min if sigma is None else sigma, jnp.float32)
        return g["mean"], g["evecs"], jnp.sqrt(g["evals"] + sig**2)


# ----------------------------------------------------------------------------- objectives


def _noise_levels(opts: EBMOptions, key, n: int, sigmas: np.ndarray, energy: Energy):
    """Each example's noise level: the single sigma, a ladder rung, or log-uniform in the range."""
    if not opts.conditional:
        return jnp.full((n,), energy.sigma_min, jnp.float32)
    if opts.continuous_sigma:
        lo, hi = math.log(energy.sigma_min), math.log(energy.sigma_max)
        return jnp.exp(lo + jax.random.uniform(key, (n,)) * (hi - lo))
    return jnp.asarray(sigmas)[jax.random.randint(key, (n,), 0, len(sigmas))]


def dsm_per_example(energy: Energy, params, y, key, sigma, time_score_weight: float = 0.0):
    """Denoising score matching at level sigma, |sigma s(y + sigma eps) + eps|^2 / 2 (the sigma^2
    weighting), plus, with `time_score_weight` w > 0, the noise level's own target
    w (sigma dE/dsigma + |eps|^2 - D)^2 / 2D ("dual" score matching: with t = sigma^2,
    d/dt log p_t(y) = E[(|eps|^2 - D) / 2t | y])."""
    eps = jax.random.normal(key, y.shape)
    if not time_score_weight:
        return 0.5 * jnp.sum((sigma * energy.score(params, y + sigma * eps, sigma) + eps) ** 2)
    grad_y, grad_sigma = jax.grad(energy, argnums=(1, 2))(params, y + sigma * eps, sigma)
    spatial = 0.5 * jnp.sum((eps - sigma * grad_y) ** 2)
    temporal = 0.5 * (sigma * grad_sigma + jnp.sum(eps**2) - y.size) ** 2 / y.size
    return spatial + time_score_weight * temporal


def ssm_per_example(energy: Energy, params, y, key, projections: int):
    """Sliced score matching (variance-reduced): E_v [v^T (grad s) v + |s|^2 / 2], v ~ N(0, I)."""

    def slice_(v):
        s, hv = jax.jvp(lambda u: energy.score(params, u), (y,), (v,))
        return jnp.sum(v * hv) + 0.5 * jnp.sum(s**2)

    return jnp.mean(jax.vmap(slice_)(jax.random.normal(key, (projections, *y.shape))))


def data_gaussian_draw(params, key, n: int, event_shape) -> jax.Array:
    """n draws from the energy space's per-coordinate Gaussian of the example batch (init statistics)."""
    stats = jax.lax.stop_gradient(params["stats"])
    mean, scale = (jnp.broadcast_to(stats[k], event_shape)[None] for k in ("mean", "scale"))
    return mean + scale * jax.random.normal(key, (n, *event_shape))


def langevin_chains(energy: Energy, params, y0, key, num_steps: int, step_size: float) -> jax.Array:
    """Unadjusted Langevin on exp(-E) in the energy's standardized coordinates, `num_steps` steps from
    y0 (n, ...): y <- y - eps s^2 grad E(y) + sqrt(2 eps) s xi, s the init scale (no gradient flows)."""
    params = jax.lax.stop_gradient(params)
    scale = jnp.broadcast_to(params["stats"]["scale"], y0.shape[1:])[None]
    grad = jax.vmap(jax.grad(lambda y: energy(params, y)))

    def step(y, k):
        noise = jax.random.normal(k, y.shape)
        return y - step_size * scale**2 * grad(y) + jnp.sqrt(2.0 * step_size) * scale * noise, None

    return jax.lax.scan(step, y0, jax.random.split(key, num_steps))[0]


def fit_noise(opts: EBMOptions, y: jax.Array, key) -> dict:
    """NCE's noise model from the example batch: its Gaussian (nce_noise="gaussian") or a mixture of
    `nce_noise_components` full-covariance Gaussians fitted by EM ("gmm"), every covariance widened by
    nce_noise_scale^2. {"log_w" (K,), "means" (K, D), "chol" (K, D, D), "inv_chol"}, flattened."""
    flat = y.reshape(y.shape[0], -1).astype(jnp.float32)
    d = flat.shape[1]
    if opts.nce_noise == "gmm":
        k = opts.nce_noise_components
        log_w, means, chol = em_fit(flat, flat[jax.random.choice(key, flat.shape[0], (k,), replace=False)])
    else:
        g = _gaussian_moments(flat, d)
        chol = jnp.linalg.cholesky((g["evecs"] * g["evals"][None]) @ g["evecs"].T + 1e-6 * jnp.eye(d))[None]
        log_w, means = jnp.zeros((1,)), g["mean"][None]
    chol = chol * opts.nce_noise_scale
    return {"log_w": log_w, "means": means, "chol": chol, "inv_chol": jnp.linalg.inv(chol)}


def noise_log_prob(g: dict, y: jax.Array) -> jax.Array:
    """log q(y) of NCE's noise mixture (`fit_noise`) for a batch y (n, ...)."""
    flat = y.reshape(y.shape[0], -1)
    z = jnp.einsum("ked,nkd->nke", g["inv_chol"], flat[:, None, :] - g["means"][None])
    log_det = jnp.sum(jnp.log(jnp.diagonal(g["chol"], axis1=-2, axis2=-1)), -1)
    per = -0.5 * jnp.sum(z**2, -1) - log_det[None] - 0.5 * flat.shape[1] * jnp.log(2 * jnp.pi)
    return jax.scipy.special.logsumexp(per + g["log_w"][None], axis=1)


def noise_sample(g: dict, key, n: int, event_shape) -> jax.Array:
    """n draws of NCE's noise mixture, shaped as examples."""
    k_c, k_e = jax.random.split(key)
    c = jax.random.categorical(k_c, g["log_w"], shape=(n,))
    eps = jax.random.normal(k_e, (n, g["means"].shape[1]))
    return (g["means"][c] + jnp.einsum("nde,ne->nd", g["chol"][c], eps)).reshape(n, *event_shape)


def nce_per_example(opts: EBMOptions, energy: Energy, params, y, key):
    """Noise-contrastive estimation: with G = -E - log Z - log q - log nu (nu = nce_ratio), the
    classifier's loss softplus(-G(data)) + nu mean softplus(G(noise)) per data example."""
    g, nu = jax.lax.stop_gradient(params["nce_noise"]), opts.nce_ratio
    noise = noise_sample(g, key, y.shape[0] * nu, y.shape[1:])
    logit = lambda v: -jax.vmap(lambda vi: energy(params, vi))(v) - params["log_z"] - noise_log_prob(g, v)
    data_term = jax.nn.softplus(-(logit(y) - math.log(nu)))
    noise_term = jax.nn.softplus(logit(noise) - math.log(nu)).reshape(y.shape[0], nu)
    return data_term + jnp.sum(noise_term, axis=1)


def make_cd_loss(opts: EBMOptions, energy: Energy, space: EnergySpace, event_shape):
    """(params, batch, key, chains) -> (objective, (metrics, chains)): contrastive divergence with
    persistent Langevin chains (see the module docstring); without `chains`, (objective, metrics) with
    short-run chains from the data's Gaussian."""

    def loss(params, batch, key, chains=None):
        y = space.forward(batch, jax.random.fold_in(key, 2))[0]
        k_fresh, k_restart, k_run = jax.random.split(jax.random.fold_in(key, 3), 3)
        if chains is None:  # no persistent chains: short-run chains from the data's Gaussian
            start = data_gaussian_draw(params, k_fresh, y.shape[0], event_shape)
        else:  # a fraction restarted from the data's Gaussian
            restart = jax.random.bernoulli(k_restart, opts.cd_reinit, (chains.shape[0],))
            fresh = data_gaussian_draw(params, k_fresh, chains.shape[0], event_shape)
            start = jnp.where(restart.reshape(-1, *([1] * len(event_shape))), fresh, chains)
        new = langevin_chains(energy, params, start, k_run, opts.cd_steps, opts.cd_step_size)
        e_data = jax.vmap(lambda yi: energy(params, yi))(y)
        e_model = jax.vmap(lambda yi: energy(params, yi))(jax.lax.stop_gradient(new))
        gap = jnp.mean(e_data) - jnp.mean(e_model)
        value = gap + opts.cd_reg * (jnp.mean(e_data**2) + jnp.mean(e_model**2))
        metrics = {"cd": value, "energy_gap": gap}
        return (value, metrics) if chains is None else (value, (metrics, new))

    return loss


def make_loss(opts: EBMOptions, energy: Energy, space: EnergySpace, event_shape=None):
    """(params, batch, key) -> (mean objective, metrics) for `opts.objective` (contrastive divergence:
    `make_cd_loss`, which also carries the chains)."""
    if opts.objective == "cd":
        return make_cd_loss(opts, energy, space, event_shape)
    sigmas = opts.sigmas()

    def loss(params, batch, key):
        y = space.forward(batch, jax.random.fold_in(key, 2))[0]
        keys = jax.random.split(key, y.shape[0])
        if opts.objective in ("dsm", "dsm_ladder"):
            sig = _noise_levels(opts, jax.random.fold_in(key, 1), y.shape[0], sigmas, energy)
            one = lambda y, k, s: dsm_per_example(energy, params, y, k, s, opts.time_score_weight)
            per = jax.vmap(one)(y, keys, sig)
        elif opts.objective == "ssm":
            per = jax.vmap(lambda y, k: ssm_per_example(energy, params, y, k, opts.ssm_projections))(y, keys)
        elif opts.objective == "nce":
            per = nce_per_example(opts, energy, params, y, jax.random.fold_in(key, 4))
        else:  # naive_mle: -mean log p~ of the data, no normalizer
            per = jax.vmap(lambda y: energy(params, y))(y)
        value = jnp.mean(per)
        return value, {opts.objective: value}

    return loss


# ----------------------------------------------------------------------------- init and samples


def make_init(opts: EBMOptions, energy: Energy, space: EnergySpace, stat_axes, event_shape):
    """(key, example batch) -> params: the network, the standardization statistics of the example
    batch in the energy's space, and (quadratic="gaussian") its Gaussian."""

    def init(key, x):
        check_batch(x, event_shape, "example batch")
        y = space.forward(jnp.asarray(x), jax.random.fold_in(key, 7))[0].astype(jnp.float32)
        stats = {"mean": jnp.mean(y, axis=stat_axes), "scale": jnp.maximum(jnp.std(y, axis=stat_axes), 1e-3)}
        dummy = jnp.zeros((1, *event_shape), jnp.float32)
        extra = (jnp.ones((1,)),) if isinstance(energy.net, EnergyUNet) else ()
        params = {"net": energy.net.init(key, dummy, jnp.zeros((1,)), *extra)["params"], "stats": stats}
        if opts.quadratic == "gaussian":
            params["gaussian"] = _gaussian_moments(y, space.num_dims)
        if opts.objective == "nce":  # the noise fitted to the example batch; log Z learned
            params["nce_noise"] = fit_noise(opts, y, jax.random.fold_in(key, 8))
            params["log_z"] = jnp.zeros((), jnp.float32)
        return params

    return init


def make_sampler(opts: EBMOptions, energy: Energy, space: EnergySpace, event_shape):
    """(params, key, n) -> n samples: annealed Langevin over the ladder, or SMC from a Gaussian."""
    sigmas = opts.sigmas()

    def sample(params, key, n):
        if opts.sampler == "annealed_langevin":
            noise = jax.random.normal(jax.random.fold_in(key, 0), (n, *event_shape))
            if opts.quadratic == "gaussian":  # start in the energy's own Gaussian at the largest level
                m, u, sc = energy.moments(params, float(sigmas[0]))
                y0 = (m[None] + (noise.reshape(n, -1) * sc[None]) @ u.T).reshape(n, *event_shape)
            else:
                y0 = jnp.broadcast_to(params["stats"]["mean"], event_shape)[None] + float(sigmas[0]) * noise
            score = lambda y, s: energy.score(params, y, s)
            y = annealed_langevin(
                score, y0, key, jnp.asarray(sigmas), opts.sample_step_scale, opts.sample_steps_per_level
            ).positions
        else:
            stats = params["stats"]
            mean = jnp.broadcast_to(stats["mean"], event_shape)
            base = gaussian_base(mean, 1.5 * jnp.broadcast_to(stats["scale"], event_shape))
            log_f = lambda y: -energy(params, y)
            y = smc_sample(
                log_f, base, key, n, opts.sample_temps, rejuvenation_steps=opts.sample_rejuvenation
            )
        return space.inverse(y)

    return sample


def _capabilities(opts: EBMOptions, energy: Energy, space: EnergySpace, event_shape=None) -> tuple:
    def log_density(params, y, sigma=None):  # vmapped over a batch of one, as log_prob computes it, so
        return -jax.vmap(lambda yi: energy(params, yi, sigma))(y[None])[0]  # both paths agree bitwise

    caps = [ContinuousSpace(lambda params, x, key: space.forward(x, key), log_density)]
    if opts.conditional:
        caps.append(NoisePath(energy.sigma_min, energy.sigma_max))
    if opts.quadratic == "gaussian":
        caps.append(GaussianTerm(energy.moments))
        if opts.correction_bound is not None and opts.output == "energy":
            caps.append(BoundedCorrection(opts.correction_bound))
    if opts.objective == "nce":
        caps.append(LearnedLogZ(lambda params: params["log_z"]))
    if opts.objective == "cd":

        def short_run(params, key, n, num_steps):
            y0 = data_gaussian_draw(params, jax.random.fold_in(key, 0), n, event_shape)
            return space.inverse(langevin_chains(energy, params, y0, key, num_steps, opts.cd_step_size))

        caps.append(ShortRunSampler(short_run, opts.cd_steps))
    return tuple(caps)


def _chains(opts: EBMOptions, event_shape) -> AuxState | None:
    """Contrastive divergence's persistent chains, started from the data's Gaussian."""
    if opts.objective != "cd":
        return None
    return AuxState(lambda key, params, x: data_gaussian_draw(params, key, opts.cd_chains, event_shape))


def _info(opts: EBMOptions, arch: str, energy: Energy, data: str) -> dict:
    return dict(
        family="ebm",
        objective=opts.objective,
        architecture=arch + (" + quadratic" if opts.output == "energy" else ""),
        data=data,
        output=opts.output,
        sigma=energy.sigma_min if opts.objective.startswith("dsm") else None,
        sigma_max=energy.sigma_max if opts.conditional else None,
        sampler=opts.sampler,
        logit_alpha=opts.logit_alpha,
        quadratic=opts.quadratic,
        correction_bound=opts.correction_bound,
    )


def ebm(event_shape: tuple[int, ...], name: str | None = None, **options) -> Model:
    """An energy-based model on vectors (D,) or images (H, W, C); options are `EBMOptions`' fields.

    sigma: the (smallest) noise level of DSM in the energy's units (gray levels for 8-bit images,
    logit units with `logit_alpha`); sigma_max, num_sigmas: the ladder; continuous_sigma: draw each
    example's level log-uniformly instead of from the rungs. prior_scale: width of the isotropic
    quadratic in standardized units. quadratic="gaussian": the example batch's full-covariance
    Gaussian smoothed at the noise level, normalized (E = -log N when the network is zero: log Z = 0),
    so the network learns only what a Gaussian misses. correction_bound B: the network's term is
    B tanh(f / B), so |log Z| < B whatever it learned. data: "continuous" (default for vectors) or
    "8bit" (default for images). energy_net: "mlp", "fourier" (vectors), "conv", "unet"
    (noise-conditional) or "auto".
    time_score_weight: see `dsm_per_example`.
    """
    event_shape = tuple(int(s) for s in event_shape)
    opts = EBMOptions(**options)
    data = opts.data or ("8bit" if len(event_shape) == 3 else "continuous")
    if opts.logit_alpha is not None and data != "8bit":
        raise ValueError("logit_alpha applies to 8-bit data (data='8bit')")
    net, arch, stat_axes = _network(opts, event_shape)
    sigmas = opts.sigmas()
    energy = Energy(opts, net, float(sigmas[-1]), float(sigmas[0]))
    space = EnergySpace(data, opts.logit_alpha, math.prod(event_shape))

    def log_prob(params, x, key=None):
        y, log_det = space.forward(x, key)
        return log_det - jax.vmap(lambda yi: energy(params, yi))(y)

    default_name = {
        "dsm": "ebm_dsm",
        "dsm_ladder": "ebm_dsm_ladder",
        "ssm": "ebm_ssm",
        "nce": "ebm_nce",
        "cd": "ebm_cd",
    }
    return Model(
        name=name or default_name.get(opts.objective, "ebm"),
        event_shape=event_shape,
        kind=Kind.UNNORMALIZED,
        init=make_init(opts, energy, space, stat_axes, event_shape),
        loss=make_loss(opts, energy, space, event_shape),
        log_prob=log_prob,
        sample=make_sampler(opts, energy, space, event_shape),
        info=_info(opts, arch, energy, data),
        capabilities=_capabilities(opts, energy, space, event_shape),
        aux_state=_chains(opts, event_shape),
        internals={"energy": energy, "score": energy.score, "sigmas": sigmas, "network": net, "space": space},
    )


ebm.options_type = EBMOptions


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


def ebm_nce(event_shape, **kwargs) -> Model:
    """Registry entry "ebm_nce": noise-contrastive estimation, log Z learned as a parameter."""
    return ebm(event_shape, **{"objective": "nce", **kwargs})


def ebm_cd(event_shape, **kwargs) -> Model:
    """Registry entry "ebm_cd": contrastive divergence with persistent short-run Langevin chains."""
    return ebm(event_shape, **{"objective": "cd", **kwargs})


for _entry, _objective in (
    (ebm_dsm, "dsm"),
    (ebm_dsm_ladder, "dsm_ladder"),
    (ebm_ssm, "ssm"),
    (ebm_naive_mle, "naive_mle"),
    (ebm_nce, "nce"),
    (ebm_cd, "cd"),
):
    _entry.options_type = EBMOptions
    _entry.fixed_options = {"objective": _objective}  # the entry's own: not an option of it
