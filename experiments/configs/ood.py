"""Presets of the anomaly-detection experiment (`experiments/ood.py`, `make ood`).

`cpu`: the models of `make images` (preset cpu), reused from results/images/runs/ when trained
there and trained with that preset when not; two likelihood-ratio backgrounds (the per-pixel
counts, free, and the PixelCNN, about 4 minutes on 2 cores); 2000 images per set, fewer for the
expensive views (the VAE's k = 1000 estimators, the diffusion bound and ODE).
`smoke`: seconds, for the tests (the per-pixel model and its background on a few images).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class OODConfig:
    models: tuple[str, ...]
    images_preset: str = "cpu"  # experiments.configs.images preset: model kwargs and training
    images_out: str | None = None  # where its runs are (None: that preset's out, results/images)
    # likelihood ratio (Ren et al. 2019): these models get a background trained on perturbed images
    background_models: tuple[str, ...] = ("pixel_cat", "pixelcnn")
    background_rate: float = 0.2  # probability that a pixel is replaced by a uniform 0..255 value
    background_train: dict = dataclasses.field(default_factory=dict)  # model -> TrainConfig fields
    ood_sets: tuple[str, ...] = ("mnist", "noise", "constant", "vflip")
    user_sets: dict = dataclasses.field(default_factory=dict)  # name -> .npy file, IDX file or directory
    n_images: int = 2000  # Fashion-MNIST test images scored, and images of each OOD set
    max_images: dict = dataclasses.field(default_factory=dict)  # "model[/estimator]" -> fewer images
    n_reference: int = 2000  # training images for the typicality reference (mean training NLL)
    typicality_batch: int = 10  # M of the batch typicality test (metrics then count batches)
    data_dir: str | None = None  # None: TFDS, then $GEN_JAX_DATA_DIR, then /usr/share/datasets
    seed: int = 0
    out: str = "results/ood"


PRESETS: dict[str, OODConfig] = {
    "cpu": OODConfig(
        models=("pixel_cat", "pixelcnn", "glow", "vae", "diffusion", "ebm_dsm_ladder"),
        # half the PixelCNN's steps of `make images`, and a little weight decay (Ren et al. used L2)
        background_train={"pixelcnn": dict(steps=1000, weight_decay=1e-2, checkpoint_every=500)},
        # images per set for the expensive views: each view scores n_images (or this) per set,
        # n_reference (or this) training images, and again for a background
        max_images={
            "vae/iwae": 100,  # k = 1000 decoder passes per image: 600 images, minutes per estimator
            "vae/prior": 100,
            "diffusion": 1000,  # 4 U-Net passes per image
            "diffusion/ode": 50,  # an adaptive ODE solve with Hutchinson divergence per image
        },
    ),
    "smoke": OODConfig(
        models=("pixel_cat",),
        images_preset="smoke",
        background_models=("pixel_cat",),
        n_images=48,
        n_reference=32,
        typicality_batch=8,
    ),
}


def get_config(preset: str) -> OODConfig:
    try:
        return PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}") from None
