"""Presets of the anomaly-detection experiment (`experiments/ood.py`, `make ood`), built once.

`cpu`: the models of `make images` (its cpu setup: the same runs, reused when trained there and
trained with that setup when not); likelihood-ratio backgrounds for the per-pixel counts (free) and
the PixelCNN; 2000 images per set, fewer for the expensive views. `smoke`: seconds, for the tests.
"""

from __future__ import annotations

import dataclasses

from experiments.configs.images import CPU, SMOKE
from gen_jax.evaluation.images import ImageSetup


@dataclasses.dataclass(frozen=True)
class OODConfig:
    """Which trained models score which images, and how."""

    setup: ImageSetup  # the images study's setup: its runs are the models scored here
    models: tuple[str, ...]
    eval_batch: dict = dataclasses.field(default_factory=dict)  # view name or model -> images per call
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
    min_bold_n: int = 50  # an AUROC resting on fewer images (or batches) per side is never called best
    seed: int = 0
    out: str = "results/ood"


PRESETS: dict[str, OODConfig] = {
    "cpu": OODConfig(
        setup=CPU.setup,
        models=("pixel_cat", "pixelcnn", "glow", "vae", "diffusion", "ebm_dsm_ladder", "ebm_flow", "ebm_cd"),
        eval_batch=CPU.eval.eval_batch,
        # half the PixelCNN's steps of `make images`, and a little weight decay (Ren et al. used L2)
        background_train={"pixelcnn": dict(steps=1000, weight_decay=1e-2, checkpoint_every=500)},
        # images per set for the expensive views: each view scores n_images (or this) per set,
        # n_reference (or this) training images, and again for a background
        max_images={"vae/iwae": 100, "vae/prior": 100, "diffusion": 1000, "diffusion/ode": 50},
    ),
    "smoke": OODConfig(
        setup=SMOKE.setup,
        models=("pixel_cat",),
        eval_batch=SMOKE.eval.eval_batch,
        background_models=("pixel_cat",),
        n_images=48,
        n_reference=32,
        typicality_batch=8,
        min_bold_n=20,  # per-image scores rest on 48 images, batch typicality on 6 batches
        out="results/ood_smoke",
    ),
}
