"""Presets of the 28x28 binary world (`experiments/binary.py`, `make binary`).

`cpu`: every model sized to train in a few minutes on 2 CPU cores (the whole study about 30 min).
`smoke`: seconds, for the tests.
"""

from __future__ import annotations

import dataclasses

from gen_jax.training import TrainConfig

TRAIN = TrainConfig(
    steps=6000, batch_size=100, lr=1e-3, warmup_steps=100, steps_per_dispatch=200, progress=True
)


@dataclasses.dataclass(frozen=True)
class BinaryConfig:
    """Binarized Fashion-MNIST: every answer to "how do we get p(x)?" on 0/1 images.

    binarization: "stochastic" (pixel = 1 with probability x / 255, drawn once with `seed`: the
    binarized-MNIST recipe) or "threshold" (x >= `threshold`). models: labels of `MODELS` in
    experiments/binary.py. The RBM's log Z: AIS with `ais_chains` chains over `ais_temps`
    temperatures from the base-rate model, reverse AIS from `reverse_chains` chains.
    """

    dataset: str = "fashion_mnist"
    ood_dataset: str = "mnist"
    data_dir: str | None = None  # IDX files; None: $GEN_JAX_DATA_DIR or TFDS
    n_train: int | None = None  # None: all 60,000
    n_test: int = 10_000
    binarization: str = "stochastic"
    threshold: int = 128
    seed: int = 0
    models: tuple[str, ...] = ("mixture", "made", "pixelcnn", "vae", "rbm", "rbm_small")
    mixture: dict = dataclasses.field(default_factory=lambda: {"num_components": 100})
    made: dict = dataclasses.field(default_factory=lambda: {"hidden": [500]})
    pixelcnn: dict = dataclasses.field(
        default_factory=lambda: {"channels": 16, "num_layers": 3, "head_hidden": 32, "first_kernel": 5}
    )
    vae: dict = dataclasses.field(
        default_factory=lambda: {
            "latent_dim": 32,
            "encoder_channels": [16, 32],
            "decoder_channels": [32, 16],
            "dense_width": 256,
        }
    )
    rbm: dict = dataclasses.field(
        default_factory=lambda: {"num_hidden": 500, "cd_steps": 1, "num_chains": 100}
    )
    small_rbm_hidden: int = 20
    train: TrainConfig = TRAIN
    train_overrides: dict = dataclasses.field(
        default_factory=lambda: {
            "rbm": {"lr": 1e-3, "steps": 10_000, "clip_norm": None},
            "rbm_small": {"lr": 3e-3, "steps": 10_000, "clip_norm": None},
            "pixelcnn": {"steps": 3000, "time_limit_s": 480.0},
            "vae": {"steps": 3000, "time_limit_s": 480.0},
        }
    )
    ais_chains: int = 100
    ais_temps: int = 20_000
    reverse_chains: int = 100
    iwae_ks: tuple[int, ...] = (1, 10, 100, 1000, 5000)
    iwae_images: int = 32
    sigmoid_steps: int = 1000
    sigmoid_hidden: tuple[int, ...] = (256,)
    is_samples: int = 100_000
    n_samples: int = 36
    out: str = "results/binary"


PRESETS = {
    "cpu": BinaryConfig(),
    "smoke": BinaryConfig(
        n_train=512,
        n_test=64,
        mixture={"num_components": 4},
        made={"hidden": [16]},
        pixelcnn={"channels": 4, "num_layers": 1, "head_hidden": 8, "first_kernel": 3},
        vae={"latent_dim": 4, "encoder_channels": [4, 4], "decoder_channels": [4, 4], "dense_width": 16},
        rbm={"num_hidden": 8, "cd_steps": 1, "num_chains": 16, "sample_steps": 10},
        small_rbm_hidden=6,
        train=dataclasses.replace(TRAIN, steps=20, batch_size=32, steps_per_dispatch=10, progress=False),
        train_overrides={},
        ais_chains=16,
        ais_temps=50,
        reverse_chains=16,
        iwae_ks=(1, 4, 16),
        iwae_images=4,
        sigmoid_steps=20,
        sigmoid_hidden=(8,),
        is_samples=1000,
        n_samples=4,
        out="results/binary_smoke",
    ),
}
