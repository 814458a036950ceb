"""Presets of the Fashion-MNIST likelihood benchmark (`experiments/images.py`, `make images`), built once.

`cpu`: what anyone can reproduce: every model trains for at most 20 minutes on 2 CPU cores, sized
from its measured training throughput (`make bench-families`). `full`: one GPU. `smoke`: seconds,
for the tests. The other image studies (ood, vae_estimators, ode_ladder) reuse these presets' runs.
"""

from __future__ import annotations

import dataclasses

from gen_jax.evaluation.images import ImageEval, ImageSetup
from gen_jax.evaluation.quality import QualityConfig
from gen_jax.likelihood.ais import AISConfig
from gen_jax.likelihood.normalize import NormalizeConfig
from gen_jax.training import TrainConfig


@dataclasses.dataclass(frozen=True)
class ImagesConfig:
    """The image benchmark: which models train how (`setup`), how they are scored (`eval`), samples,
    and the sample-quality report (`quality`: Parzen bits/dim and a feature distance)."""

    setup: ImageSetup
    eval: ImageEval = ImageEval()
    quality: QualityConfig = QualityConfig()
    n_samples: int = 64  # samples in each model's grid
    out: str = "results/images"
    eval_run: str | None = None  # evaluate only this saved run directory (make eval CKPT=...)


MODELS = ("pixel_cat", "pixelcnn", "glow", "vae", "gan", "diffusion", "ebm_dsm_ladder", "ebm_flow", "ebm_cd")
GAN_TRAIN = dict(lr=2e-4, b1=0.5, warmup_steps=0, schedule="constant", checkpoint_every=500)

# Diffusion: the VDM-style continuous-time model with a U-Net; on CPU it runs on 2x2 patches (14x14x4,
# a quarter of the convolution cost) at 64 channels, attention at 7x7. Bits/dim by the bound (4
# stratified times per test image) and by the probability-flow ODE (Hutchinson divergence,
# dequantized) at the tolerance `make ode-ladder` chose, on fewer images.
DIFFUSION_CPU = dict(
    data="8bit",
    unet_channels=(64, 64),
    unet_patch=2,
    elbo_samples=4,
    sample_steps=250,
    ode_rtol=1e-3,
    ode_atol=1e-3,
)
# Energy model: on the logit scale (Glow's), E = B tanh(f / B) - log N(z; m, C + sigma^2 I): the
# training images' full-covariance Gaussian smoothed at the noise level, plus a conv network's
# correction bounded by B, trained by DSM at noise levels drawn log-uniformly in 0.01 .. 3 logit units.
# The bound keeps log Z within (-B, B): an interval the bits/dim is certain to lie in; AIS (in the
# coordinates that whiten the Gaussian) and importance sampling from the Gaussian estimate where.
EBM_CPU = dict(
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

# Energy model on a normalized base: Glow (the same architecture as "glow") times exp(-B tanh(f / B)),
# the Glow by maximum likelihood and f with its log Z by NCE against the Glow's own samples, jointly.
# log Z = log E_q[exp(-B tanh(f / B))]: importance sampling from the Glow beside AIS from it.
GLOW_CPU = dict(num_levels=2, steps_per_level=4, channels=32, num_blocks=1)
EBM_FLOW_CPU = dict(
    base_options=GLOW_CPU, conv_features=(32, 64, 64), correction_bound=50.0, sir_candidates=16
)
# A pure energy model trained by contrastive divergence: the energy of "ebm_dsm_ladder" (a Gaussian
# plus a bounded conv correction on the logit scale) with persistent Langevin chains, 10 steps each
# optimizer step; the Gaussian smoothed at 0.3 logit units keeps the preconditioned steps stable.
EBM_CD_CPU = dict(
    conv_features=(32, 64, 64),
    logit_alpha=1e-4,
    quadratic="gaussian",
    correction_bound=50.0,
    sigma=0.3,
    cd_chains=64,
    cd_steps=10,
    cd_step_size=0.004,
    sample_temps=50,
    sample_rejuvenation=2,
)

CPU = ImagesConfig(
    setup=ImageSetup(
        models=MODELS,
        train=TrainConfig(
            steps=2000,
            batch_size=64,
            lr=1e-3,
            warmup_steps=100,
            checkpoint_every=500,
            time_limit_s=20 * 60,
            eval_size=500,
        ),
        train_overrides={
            "pixel_cat": dict(steps=0, init_examples=60_000),  # counted in init
            "pixelcnn": dict(steps=2000, batch_size=16, lr=1e-3, warmup_steps=100, checkpoint_every=500),
            "glow": dict(steps=3500, batch_size=32, lr=1e-3, warmup_steps=200, checkpoint_every=500),
            "vae": dict(steps=6000, batch_size=64, lr=1e-3, checkpoint_every=1000),
            "gan": dict(steps=2000, batch_size=64, time_limit_s=6 * 60, **GAN_TRAIN),
            "diffusion": dict(steps=3000, batch_size=32, lr=2e-3, warmup_steps=200, checkpoint_every=500),
            # init_examples: the Gaussian of all the training images
            "ebm_dsm_ladder": dict(
                steps=6000,
                batch_size=64,
                lr=1e-3,
                warmup_steps=200,
                checkpoint_every=1000,
                init_examples=60_000,
            ),
            "ebm_flow": dict(
                steps=3500,
                batch_size=32,
                lr=1e-3,
                warmup_steps=200,
                checkpoint_every=500,
                time_limit_s=15 * 60,
            ),
            "ebm_cd": dict(
                steps=800,
                batch_size=64,
                lr=1e-3,
                warmup_steps=100,
                checkpoint_every=200,
                init_examples=60_000,
                time_limit_s=8 * 60,
            ),
        },
        model_options={
            "pixelcnn": dict(channels=32, num_layers=6, first_kernel=5, head_hidden=64, num_mixtures=5),
            "glow": GLOW_CPU,
            "vae": dict(latent_dim=32, encoder_channels=(32, 64), decoder_channels=(64, 32), dense_width=256),
            "gan": dict(channels=16, latent_dim=64, penalty="r1", penalty_weight=1.0),
            "diffusion": DIFFUSION_CPU,
            "ebm_dsm_ladder": EBM_CPU,
            "ebm_flow": EBM_FLOW_CPU,
            "ebm_cd": EBM_CD_CPU,
        },
    ),
    eval=ImageEval(
        # Glow and the diffusion ODE: importance-weighted dequantization over k draws (one draw: a bound)
        estimators={"glow": ("iw:k=4", "iw:k=16", "iw:k=64"), "diffusion": ("ode_iw:k=4",)},
        eval_examples={
            "vae/iwae": 1000,
            "vae/prior": 1000,
            "diffusion/ode": 500,
            "diffusion/ode_tol0.001_iw4": 100,
            "glow/iw64": 1000,
        },
        eval_batch={  # the VAE's k = 1000 estimators: 25 images x 100 samples per decoder call
            "vae/iwae": 25,
            "vae/prior": 25,
            "diffusion": 100,
            "diffusion/ode": 50,
            "diffusion/ode_tol0.001_iw4": 25,
            "ebm_dsm_ladder": 500,
            "glow/iw16": 250,
            "glow/iw64": 100,
        },
        normalize=NormalizeConfig(
            # one pilot on 200 temperatures serves the ladder; ebm_flow's chains in its Glow's latent space
            ais=AISConfig(
                num_chains=64, num_temps=2000, num_pilot=64, pilot_temps=200, flow_coordinates="latent"
            ),
            is_samples=20_000,
            is_chunk=500,
        ),
    ),
    quality=QualityConfig(
        num_samples=5000,
        # slow samplers draw fewer (pixel by pixel; 250 U-Net steps; 500 Langevin steps per sample)
        num_samples_by_model={
            "pixelcnn": 1000,
            "diffusion": 300,
            "ebm_dsm_ladder": 1000,
            "ebm_flow": 1000,
            "ebm_cd": 1000,
        },
        n_val=1000,
        n_test=2000,
    ),
)

GLOW_FULL = dict(num_levels=2, steps_per_level=16, channels=256, num_blocks=2)
FULL = ImagesConfig(
    setup=dataclasses.replace(
        CPU.setup,
        train=TrainConfig(
            steps=100_000,
            batch_size=128,
            lr=1e-3,
            warmup_steps=1000,
            checkpoint_every=5000,
            eval_size=2000,
            eval_every=5000,
        ),
        train_overrides={
            "pixel_cat": dict(steps=0, init_examples=60_000),
            "pixelcnn": dict(lr=5e-4),
            "glow": dict(lr=5e-4),
            "gan": dict(steps=50_000, batch_size=128, **GAN_TRAIN),
            "diffusion": dict(lr=2e-4, ema_decay=0.9999),
            "ebm_dsm_ladder": dict(init_examples=60_000),
            "ebm_cd": dict(init_examples=60_000),
        },
        model_options={
            "pixelcnn": dict(channels=128, num_layers=15, first_kernel=7, head_hidden=256, num_mixtures=10),
            "glow": GLOW_FULL,
            "vae": dict(
                latent_dim=64, encoder_channels=(64, 128), decoder_channels=(128, 64), dense_width=512
            ),
            "gan": dict(channels=64, latent_dim=64, penalty="r1", penalty_weight=1.0),
            "diffusion": dict(data="8bit", unet_channels=(128, 256, 256), unet_res_blocks=2, elbo_samples=16),
            "ebm_dsm_ladder": dict(EBM_CPU, conv_features=(64, 128, 256)),
            "ebm_flow": dict(EBM_FLOW_CPU, base_options=GLOW_FULL, conv_features=(64, 128, 256)),
            "ebm_cd": dict(EBM_CD_CPU, conv_features=(64, 128, 256)),
        },
    ),
    eval=dataclasses.replace(
        CPU.eval,
        estimators={"glow": ("iw:k=16", "iw:k=256")},
        eval_examples={"vae/iwae": 10_000, "vae/prior": 1000, "diffusion/ode": 2000, "glow/iw256": 2000},
        eval_batch={"vae/iwae": 50, "vae/prior": 50, "diffusion": 250, "diffusion/ode": 100},
    ),
    quality=QualityConfig(num_samples=10_000, n_val=2000, n_test=10_000),
    out="results/images_full",
)

# the energy of both smoke energy models: a tiny conv correction on the logit scale's Gaussian
SMOKE_ENERGY = dict(conv_features=(4,), logit_alpha=1e-4, quadratic="gaussian", correction_bound=50.0)
SMOKE = ImagesConfig(
    setup=ImageSetup(
        models=MODELS,
        train=TrainConfig(
            steps=1, batch_size=4, steps_per_dispatch=1, checkpoint_every=1, progress=False, eval_size=8
        ),
        train_overrides={"pixel_cat": {"steps": 0, "init_examples": 64}},
        model_options={
            "pixelcnn": dict(channels=4, num_layers=1, first_kernel=3, head_hidden=8, num_mixtures=1),
            "glow": dict(num_levels=1, steps_per_level=1, channels=4, learn_prior=False),
            "vae": dict(
                latent_dim=2,
                encoder_channels=(4,),
                decoder_channels=(4,),
                dense_width=8,
                num_samples=4,
                chunk_size=4,
            ),
            "gan": dict(channels=4, latent_dim=8),
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
            "ebm_flow": dict(
                base_options=dict(num_levels=1, steps_per_level=1, channels=4, learn_prior=False),
                conv_features=(4,),
                sir_candidates=2,
            ),
            "ebm_cd": dict(SMOKE_ENERGY, cd_chains=4, cd_steps=2, sample_temps=3, sample_rejuvenation=1),
            "ebm_dsm_ladder": dict(
                SMOKE_ENERGY,
                sigma=0.01,
                sigma_max=3.0,
                num_sigmas=3,
                sampler="annealed_langevin",
                sample_steps_per_level=2,
            ),
        },
        n_train=64,
        n_test=16,
        runs="results/images_smoke",
    ),
    eval=ImageEval(
        estimators={"glow": ("iw:k=2",), "diffusion": ("ode_iw:k=2",)},
        eval_examples={"diffusion/ode": 2, "diffusion/ode_tol0.1_iw2": 2},
        eval_batch={"vae/iwae": 8, "vae/prior": 8, "diffusion/ode": 2},
        normalize=NormalizeConfig(
            ais=AISConfig(num_chains=8, num_temps=20, num_pilot=8, pilot_temps=5, flow_coordinates="latent"),
            is_samples=64,
            is_chunk=32,
        ),
        ais_reference=64,
        ais_check_temps=(10,),
    ),
    n_samples=4,
    out="results/images_smoke",
)

PRESETS: dict[str, ImagesConfig] = {"cpu": CPU, "full": FULL, "smoke": SMOKE}
