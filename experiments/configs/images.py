"""Presets of the Fashion-MNIST likelihood benchmark (`experiments/images.py`, `make images`).

`cpu`: what anyone can reproduce: every model trains for at most 20 minutes on 2 CPU cores.
`full`: the configurations for one GPU (published-quality numbers; see the README).
`smoke`: seconds, for the tests (a few real or synthetic images).
"""

from __future__ import annotations

import dataclasses

from experiments.image_quality import QualityConfig
from gen_jax.likelihood.ais import AISConfig
from gen_jax.likelihood.normalize import NormalizeConfig
from gen_jax.training import TrainConfig


@dataclasses.dataclass(frozen=True)
class ImagesConfig:
    models: tuple[str, ...]
    train: TrainConfig
    train_overrides: dict = dataclasses.field(default_factory=dict)  # model -> TrainConfig fields
    model_kwargs: dict = dataclasses.field(default_factory=dict)  # model -> builder kwargs
    dataset: str = "fashion_mnist"
    data_dir: str | None = None  # None: TFDS, then $GEN_JAX_DATA_DIR, then /usr/share/datasets
    n_train: int | None = None  # None: all 60,000
    n_test: int | None = None  # None: all 10,000
    eval_examples: dict = dataclasses.field(default_factory=dict)  # "model/estimator" -> test images used
    eval_batch: dict = dataclasses.field(default_factory=dict)  # "model[/estimator]" -> images per call
    n_samples: int = 64  # samples in each model's grid
    seed: int = 0
    out: str = "results/images"
    quality: QualityConfig = QualityConfig()  # Parzen bits/dim, feature distance (quality.md); default off
    # energy models: log Z by AIS from a Gaussian fitted to `ais_reference` training images; the
    # same AIS at the fewer temperatures `ais_check_temps` shows whether log Z has stopped rising
    normalize: NormalizeConfig = NormalizeConfig(ais=AISConfig(num_chains=64, num_temps=2000, num_pilot=64))
    ais_reference: int = 10_000
    ais_check_temps: tuple[int, ...] = (200, 600)


_BASELINE = {"pixel_cat": {"steps": 0, "init_examples": 60_000}}

PRESETS: dict[str, ImagesConfig] = {
    "cpu": ImagesConfig(
        models=("pixel_cat",),
        train=TrainConfig(
            steps=2000,
            batch_size=64,
            lr=1e-3,
            warmup_steps=100,
            checkpoint_every=500,
            time_limit_s=20 * 60,
            eval_size=500,
        ),
        train_overrides=_BASELINE,
    ),
    "full": ImagesConfig(
        models=("pixel_cat",),
        train=TrainConfig(
            steps=100_000,
            batch_size=128,
            lr=1e-3,
            warmup_steps=1000,
            checkpoint_every=5000,
            eval_size=2000,
            eval_every=5000,
        ),
        train_overrides=_BASELINE,
    ),
    "smoke": ImagesConfig(
        normalize=NormalizeConfig(ais=AISConfig(num_chains=8, num_temps=20, num_pilot=8)),
        ais_reference=64,
        ais_check_temps=(10,),
        models=("pixel_cat",),
        train=TrainConfig(
            steps=1, batch_size=4, steps_per_dispatch=1, checkpoint_every=1, progress=False, eval_size=8
        ),
        train_overrides={"pixel_cat": {"steps": 0, "init_examples": 64}},
        n_train=64,
        n_test=16,
        n_samples=4,
    ),
}


# ----------------------------------------------------------------------------- neural models (issue 5)
# The gated PixelCNN, the multi-scale Glow and the conv VAE, added to each preset. cpu: step counts
# from measured training throughput on 2 cores (PixelCNN 77 images/s at batch 16, Glow 260 at batch
# 32: see the README) so that each trains in about 7-8 minutes, evaluation and samples included in
# one 10-minute run, with the cosine schedule run to its end; full: one GPU.
# Evaluation: the VAE's IWAE and prior estimators (k = 1000 each) on the first test images only.


def _add_models(cfg: ImagesConfig, models: dict, overrides: dict, **fields) -> ImagesConfig:
    """`cfg` with `models` (name -> builder kwargs) appended, their TrainConfig overrides, and
    dict fields (eval_examples, eval_batch) merged."""
    merged = {k: {**getattr(cfg, k), **v} for k, v in fields.items()}
    return dataclasses.replace(
        cfg,
        models=cfg.models + tuple(m for m in models if m not in cfg.models),
        model_kwargs={**cfg.model_kwargs, **models},
        train_overrides={**cfg.train_overrides, **overrides},
        **merged,
    )


PRESETS["cpu"] = _add_models(
    PRESETS["cpu"],
    {
        "pixelcnn": dict(channels=32, num_layers=6, first_kernel=5, head_hidden=64, num_mixtures=5),
        "glow": dict(num_levels=2, steps_per_level=4, hidden=32, num_blocks=1),
        "vae": dict(latent_dim=32, encoder_channels=(32, 64), decoder_channels=(64, 32), hidden=256),
    },
    {
        "pixelcnn": dict(steps=2000, batch_size=16, lr=1e-3, warmup_steps=100, checkpoint_every=500),
        "glow": dict(steps=3500, batch_size=32, lr=1e-3, warmup_steps=200, checkpoint_every=500),
        "vae": dict(steps=6000, batch_size=64, lr=1e-3, checkpoint_every=1000),
    },
    eval_examples={"vae/iwae": 1000, "vae/prior": 1000},
    eval_batch={"vae/iwae": 10, "vae/prior": 10},
)
PRESETS["full"] = _add_models(
    PRESETS["full"],
    {
        "pixelcnn": dict(channels=128, num_layers=15, first_kernel=7, head_hidden=256, num_mixtures=10),
        "glow": dict(num_levels=2, steps_per_level=16, hidden=256, num_blocks=2),
        "vae": dict(latent_dim=64, encoder_channels=(64, 128), decoder_channels=(128, 64), hidden=512),
    },
    {"pixelcnn": dict(lr=5e-4), "glow": dict(lr=5e-4)},
    eval_examples={"vae/iwae": 10_000, "vae/prior": 1000},
    eval_batch={"vae/iwae": 50, "vae/prior": 50},
)
PRESETS["smoke"] = _add_models(
    PRESETS["smoke"],
    {
        "pixelcnn": dict(channels=4, num_layers=1, first_kernel=3, head_hidden=8, num_mixtures=1),
        "glow": dict(num_levels=1, steps_per_level=1, hidden=4, learn_prior=False),
        "vae": dict(
            latent_dim=2, encoder_channels=(4,), decoder_channels=(4,), hidden=8, num_samples=4, chunk_size=4
        ),
    },
    {},
    eval_batch={"vae/iwae": 8, "vae/prior": 8},
)


# ----------------------------------------------------------------------------- GAN, sample quality (issue 8)
# A DCGAN-style pair (no density: a "none" row with its sample grid), and quality.md: Parzen bits/dim
# and the FID-like feature distance for each model's samples and the training set itself. On CPU the
# slow samplers (PixelCNN, diffusion, the energy model's Langevin) draw fewer samples.
_GAN_TRAIN = dict(lr=2e-4, b1=0.5, warmup_steps=0, schedule="constant", checkpoint_every=500)
PRESETS["cpu"] = dataclasses.replace(
    _add_models(
        PRESETS["cpu"],
        {"gan": dict(channels=16, latent_dim=64, penalty="r1", penalty_weight=1.0)},  # ~5.5 steps/s
        {"gan": dict(steps=2000, batch_size=64, time_limit_s=6 * 60, **_GAN_TRAIN)},
    ),
    quality=QualityConfig(
        num_samples=5000,
        # slow samplers draw fewer (pixel by pixel; 250 U-Net steps; 500 Langevin steps per sample)
        num_samples_by_model={"pixelcnn": 1000, "diffusion": 300, "ebm_dsm_ladder": 1000},
        n_val=1000,
        n_test=2000,
        models=("pixel_cat", "gan", "vae", "glow", "pixelcnn", "diffusion", "ebm_dsm_ladder"),
    ),
)
PRESETS["full"] = dataclasses.replace(
    _add_models(
        PRESETS["full"],
        {"gan": dict(channels=64, latent_dim=64, penalty="r1", penalty_weight=1.0)},
        {"gan": dict(steps=50_000, batch_size=128, **_GAN_TRAIN)},
    ),
    quality=QualityConfig(num_samples=10_000, n_val=2000, n_test=10_000),
)


# ------------------------------------------------------------------- diffusion, energy model (issue 5)
# Diffusion: the VDM-style continuous-time model with a U-Net; on CPU the U-Net runs on 2x2 patches
# (14x14x4: a quarter of the convolution cost) at 64 channels, 14x14 and 7x7, attention at 7x7.
# Bits/dim by the bound (4 stratified times per test image: unbiased, 40,000 U-Net calls for the
# test set) and by the probability-flow ODE (Hutchinson divergence, dequantized) on fewer images.
# Energy model: on the logit scale (Glow's), E = B tanh(f / B) - log N(z; m, C + sigma^2 I): the
# training images' full-covariance Gaussian smoothed at the noise level, plus a conv network's
# correction bounded by B, trained by DSM at noise levels drawn log-uniformly in 0.01 .. 3 logit
# units. The Gaussian alone reaches ~4.19 bits/dim; the bound keeps log Z within (-B, B), an
# interval the bits/dim is certain to lie in (B = 50: +-0.09 bits/dim), and AIS (in the
# coordinates that whiten the Gaussian, see ImagesConfig.normalize) estimates where inside it.
# An unbounded network trained the same way grew wells away from the data that AIS kept finding
# (log Z 23,318 -> 29,534 from 200 to 1,000 temperatures): README, "energy model".
_DIFFUSION_CPU = dict(
    data="8bit",
    unet_channels=(64, 64),
    unet_patch=2,
    elbo_samples=4,
    sample_steps=250,
    ode_rtol=1e-3,
    ode_atol=1e-3,
)
_EBM_CPU = dict(
    conv_features=(32, 64, 64),
    logit_alpha=1e-4,
    quadratic="gaussian",
    correction_bound=50.0,
    continuous_sigma=True,
    sigma=0.01,
    sigma_max=3.0,
    num_sigmas=10,
    sampler="annealed_langevin",
    sample_steps_per_level=50,
    sample_step_scale=0.1,
)
PRESETS["cpu"] = _add_models(
    PRESETS["cpu"],
    {"diffusion": _DIFFUSION_CPU, "ebm_dsm_ladder": _EBM_CPU},
    {
        "diffusion": dict(steps=3000, batch_size=32, lr=2e-3, warmup_steps=200, checkpoint_every=500),
        "ebm_dsm_ladder": dict(
            steps=6000, batch_size=64, lr=1e-3, warmup_steps=200, checkpoint_every=1000, init_examples=60_000
        ),  # the Gaussian of all the training images
    },
    eval_examples={"diffusion/ode": 200},
    eval_batch={"diffusion": 100, "diffusion/ode": 50, "ebm_dsm_ladder": 500},
)
PRESETS["full"] = _add_models(
    PRESETS["full"],
    {
        "diffusion": dict(data="8bit", unet_channels=(128, 256, 256), unet_res_blocks=2, elbo_samples=16),
        "ebm_dsm_ladder": dict(_EBM_CPU, conv_features=(64, 128, 256)),
    },
    {"diffusion": dict(lr=2e-4, ema_decay=0.9999)},
    eval_examples={"diffusion/ode": 2000},
    eval_batch={"diffusion": 250, "diffusion/ode": 100},
)
PRESETS["smoke"] = _add_models(
    PRESETS["smoke"],
    {
        "diffusion": dict(
            data="8bit",
            unet_channels=(4,),
            unet_attention=False,
            unet_patch=2,
            elbo_samples=1,
            sample_steps=2,
            ode_rtol=1e-1,
            ode_atol=1e-1,
        ),
        "ebm_dsm_ladder": dict(
            conv_features=(4,),
            logit_alpha=1e-4,
            quadratic="gaussian",
            correction_bound=50.0,
            sigma=0.01,
            sigma_max=3.0,
            num_sigmas=3,
            sampler="annealed_langevin",
            sample_steps_per_level=2,
        ),
    },
    {},
    eval_examples={"diffusion/ode": 2},
    eval_batch={"diffusion/ode": 2},
)
PRESETS["smoke"] = _add_models(PRESETS["smoke"], {"gan": dict(channels=4, latent_dim=8)}, {})


def get_config(preset: str) -> ImagesConfig:
    try:
        return PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}") from None
