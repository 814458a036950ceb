"""Presets of the 28x28 binary world (`experiments/binary.py`, `make binary`).

`cpu`: every model sized to train in a few minutes on 2 CPU cores (the whole study about 40 min).
`smoke`: seconds, for the tests.
"""

from __future__ import annotations

import dataclasses

from gen_jax.likelihood.ais import AISConfig
from gen_jax.likelihood.normalize import NormalizeConfig
from gen_jax.training import TrainConfig

TRAIN = TrainConfig(steps=6000, batch_size=100, lr=1e-3, warmup_steps=100, steps_per_dispatch=200)
MODELS = ("linear_energy", "bernoulli_mixture", "ar_bernoulli", "pixelcnn", "vae_bin", "rbm")


@dataclasses.dataclass(frozen=True)
class BinaryConfig:
    """Binarized Fashion-MNIST: every answer to "how do we get p(x)?" on 0/1 images.

    binarization: "stochastic" (pixel = 1 with probability x / 255, drawn once with `seed`: the
    binarized-MNIST recipe) or "threshold" (x >= `threshold`). models: registry names, each given its
    data in `forms` (vector, image01 or image255; vector by default). check_options: per label
    "<model>/<variant>", another run of that model with these options overridden, small enough for
    its log Z to be exact: the check of its estimators (the RBM with ~20 hidden units: the visible
    units sum out, 2^20 hidden states enumerate). normalize: log Z of unnormalized models (the
    model's own estimators where it has them: an RBM's AIS from the base rate and reverse AIS).
    sigmoid_options: the network with a sigmoid output trained by naive maximum likelihood, its total
    mass over {0,1}^784 by importance sampling with `mass_samples` draws.
    """

    dataset: str = "fashion_mnist"
    ood_dataset: str = "mnist"
    data_dir: str | None = None  # IDX files; None: TFDS, then $GEN_JAX_DATA_DIR
    n_train: int | None = None  # None: all 60,000
    n_test: int = 10_000
    binarization: str = "stochastic"
    threshold: int = 128
    seed: int = 0
    models: tuple[str, ...] = MODELS
    forms: dict = dataclasses.field(default_factory=lambda: {"pixelcnn": "image01", "vae_bin": "image255"})
    model_options: dict = dataclasses.field(
        default_factory=lambda: {
            "bernoulli_mixture": {"num_components": 100},
            "ar_bernoulli": {"hidden": [500]},
            "pixelcnn": {
                "output": "bernoulli",
                "channels": 16,
                "num_layers": 3,
                "head_hidden": 32,
                "first_kernel": 5,
            },
            "vae_bin": {
                "latent_dim": 32,
                "encoder_channels": [16, 32],
                "decoder_channels": [32, 16],
                "dense_width": 256,
            },
            # AIS by block Gibbs throughout: a collapsed sweep on 500 hidden units costs 500 block sweeps
            # (from beta = 0.9 on: about 40 min per direction here; from 0.99: 567.300 +- 0.035 against
            # block Gibbs' 567.33 +- 0.05, measured once)
            "rbm": {"num_hidden": 500, "cd_steps": 1, "num_chains": 100, "ais_collapsed_from": 1.0},
        }
    )
    # small variants whose log Z is also enumerated: the check RBM anneals
    # h alone from beta = 0.9 on (gen_jax.models.rbm); the same RBM with the 500-unit RBM's moves
    # (block Gibbs throughout) shows how far those can be trusted
    check_options: dict = dataclasses.field(
        default_factory=lambda: {
            "rbm/check": {"num_hidden": 20, "ais_collapsed_from": 0.9},
            "rbm/check_block": {"num_hidden": 20, "ais_collapsed_from": 1.0},
        }
    )
    train: TrainConfig = TRAIN
    train_overrides: dict = dataclasses.field(
        default_factory=lambda: {
            "linear_energy": {"steps": 0, "init_examples": 60_000},  # its maximum likelihood is closed form
            "rbm": {"lr": 1e-3, "steps": 10_000, "clip_norm": None},
            "pixelcnn": {"steps": 3000, "time_limit_s": 480.0},
            "vae_bin": {"steps": 3000, "time_limit_s": 480.0},
        }
    )
    # 500 chains: the check RBM's AIS log Z has a standard error of about 0.03 nats
    normalize: NormalizeConfig = NormalizeConfig(ais=AISConfig(num_chains=500, num_temps=20_000))
    iwae_ks: tuple[int, ...] = (1, 10, 100, 1000, 5000)
    iwae_images: int = 100
    iwae_chunk: int = 100
    sigmoid_options: dict = dataclasses.field(
        default_factory=lambda: {"hidden": [256], "output": "sigmoid", "standardize": "none"}
    )
    sigmoid_steps: int = 1000
    mass_samples: int = 100_000
    n_samples: int = 36
    out: str = "results/binary"


PRESETS = {
    "cpu": BinaryConfig(),
    "smoke": BinaryConfig(
        n_train=512,
        n_test=64,
        model_options={
            "bernoulli_mixture": {"num_components": 4},
            "ar_bernoulli": {"hidden": [16]},
            "pixelcnn": {
                "output": "bernoulli",
                "channels": 4,
                "num_layers": 1,
                "head_hidden": 8,
                "first_kernel": 3,
            },
            "vae_bin": {
                "latent_dim": 4,
                "encoder_channels": [4, 4],
                "decoder_channels": [4, 4],
                "dense_width": 16,
            },
            "rbm": {"num_hidden": 24, "cd_steps": 1, "num_chains": 16, "sample_steps": 10},
        },
        check_options={"rbm/check": {"num_hidden": 6}},
        train=dataclasses.replace(TRAIN, steps=20, batch_size=32, steps_per_dispatch=10, progress=False),
        train_overrides={"linear_energy": {"steps": 0, "init_examples": 512}},
        normalize=NormalizeConfig(ais=AISConfig(num_chains=16, num_temps=50)),
        iwae_ks=(1, 4, 16),
        iwae_images=4,
        iwae_chunk=4,
        sigmoid_options={"hidden": [8], "output": "sigmoid", "standardize": "none"},
        sigmoid_steps=20,
        mass_samples=1000,
        n_samples=4,
        out="results/binary_smoke",
    ),
}
