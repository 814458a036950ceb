"""Presets of the normalized-vs-unnormalized contrast (`experiments/contrast.py`, `make contrast`) and
of its two demonstrations (`experiments/demos.py`)."""

from __future__ import annotations

import dataclasses

from experiments.configs.toy2d import ALL_DATASETS
from gen_jax.evaluation.fit import VectorEval
from gen_jax.likelihood.ais import AISConfig
from gen_jax.likelihood.normalize import NormalizeConfig
from gen_jax.training import TrainConfig


@dataclasses.dataclass(frozen=True)
class PatchesConfig:
    """The tiny discrete world: 3x3 binary patches of binarized Fashion-MNIST (512 states)."""

    data_name: str = "fashion-mnist"
    data_dir: str | None = None  # None: $GEN_JAX_DATA_DIR
    size: int = 3
    threshold: int = 127
    n_train: int = 100_000
    n_test: int = 20_000
    models: tuple[str, ...] = (
        "freq_table",
        "bernoulli",
        "ar_bernoulli",
        "ebm_exact_ml",
        "ebm_pseudo_lik",
        "ebm_bin_nce",
        "ebm_bin_cd",
    )
    closed_form: tuple[str, ...] = ("freq_table", "bernoulli")  # fitted by `init` on all of train (MLE)
    train: TrainConfig = TrainConfig(
        steps=3000, batch_size=1024, lr=3e-3, warmup_steps=100, checkpoint_every=None
    )
    model_options: dict = dataclasses.field(default_factory=dict)
    normalize: NormalizeConfig = NormalizeConfig(ais=AISConfig(num_chains=2000, num_temps=300))
    reverse_ais: bool = True  # sandwich log Z with reverse AIS from exact (enumerated) samples


@dataclasses.dataclass(frozen=True)
class ContrastConfig:
    """2D datasets x models (flows, energy models normalized by AIS with the grid as the check,
    baselines), and the tiny discrete world (`patches`, None: skip it)."""

    datasets: tuple[str, ...]
    models: tuple[str, ...]
    train: TrainConfig
    train_overrides: dict = dataclasses.field(default_factory=dict)
    model_options: dict = dataclasses.field(default_factory=dict)
    n_train: int = 50_000
    n_test: int = 10_000  # also the true samples of the sample MMD
    eval: VectorEval = VectorEval(grid_n=300, n_samples=10_000)
    patches: PatchesConfig | None = PatchesConfig()
    seed: int = 0
    out: str = "results/contrast"
    parzen_samples: int = 5000  # model samples per Parzen estimate (parzen.json); 0 turns it off
    parzen_val: int = 2000  # held-out training points that choose the Parzen bandwidth


@dataclasses.dataclass(frozen=True)
class DemosConfig:
    """The two demonstrations: naive MLE of log p~ diverges; a sigmoid output is not a density."""

    dataset: str = "moons"
    naive_model: str = "ebm_naive_mle"  # the energy network trained on raw log p~ (no normalizer)
    score_model: str = "ebm_dsm"  # the same network trained by score matching, for contrast
    train: TrainConfig = TrainConfig(
        steps=3000, batch_size=512, lr=1e-3, warmup_steps=100, eval_every=250, checkpoint_every=None
    )
    network: dict = dataclasses.field(default_factory=dict)  # options of every demo network
    grid_n: int = 300  # cells a side for the true NLL's grid log Z (over the widened box)
    grid_widen: float = 1.0
    figure_grid_n: int = 300
    n_train: int = 50_000
    n_test: int = 10_000
    seed: int = 0
    out: str = "results/contrast/demos"


# diffusion: bound and ODE rows; the energy models by every objective: DSM, SSM, NCE, CD
MODELS = ("nsf", "maf", "ebm_dsm", "ebm_ssm", "ebm_nce", "ebm_cd", "ebm_nsf", "gmm", "gan", "diffusion")
SMC = {"sample_temps": 100, "sample_rejuvenation": 5}  # samples: AIS + resampling, then 5 MALA steps
# every energy network reads random Fourier features of x: a plain MLP energy [128, 128] missed the NSF by
# 0.2-0.5 nats on checkerboard, rings and 2spirals whatever the objective (its spectral bias)
ENERGY = {**SMC, "energy_net": "fourier"}
OPTIONS = {
    "maf": {"num_layers": 8, "activation": "silu"},
    "ebm_dsm": ENERGY,
    "ebm_ssm": ENERGY,
    # NCE against the data's Gaussian widened 2x, 8 noise samples per data point: a noise that covers
    # the space around the data (an EM mixture hugging the modes left the Fourier energy free to put
    # mass where neither data nor noise fall: 8gaussians 3.71 nats against 2.84 with this noise)
    "ebm_nce": {**ENERGY, "nce_noise": "gaussian", "nce_ratio": 8, "nce_noise_scale": 2.0},
    # CD: 1000 persistent chains, 20 Langevin steps each per optimizer step, 5% restarted
    "ebm_cd": {**ENERGY, "cd_chains": 1000, "cd_steps": 20, "cd_step_size": 0.01},
    # an energy on a normalized base: the same NSF x a bounded MLP correction, NCE against the NSF
    "ebm_nsf": {"hidden": (128, 128)},
    "gmm": {"num_components": 10},
    # the bound and the ODE cost far more per point than a flow: 60x60 density grids
    "diffusion": {"grid_n": 60, "ode_grid_n": 60},
}
TRAIN = {
    "gmm": {"steps": 3000, "lr": 1e-2},
    "ebm_ssm": {"steps": 3000},
    "ebm_nce": {"init_examples": 10_000},  # the noise mixture's EM sees 10,000 points
    "gan": {"lr": 1e-3, "b1": 0.5},  # the implicit model: samples only, Parzen estimate in parzen.json
}
SMOKE_TRAIN = TrainConfig(
    steps=40, batch_size=128, steps_per_dispatch=20, checkpoint_every=20, progress=False
)

PRESETS: dict[str, ContrastConfig] = {
    # make contrast: every 2D dataset x the models above and the tiny discrete world
    "default": ContrastConfig(
        datasets=ALL_DATASETS,
        models=MODELS,
        train=TrainConfig(steps=3000, batch_size=512, lr=2e-3, warmup_steps=200, checkpoint_every=1000),
        train_overrides=TRAIN,
        model_options=OPTIONS,
        # grid log Z over the data box widened by twice its width on each side (5x as wide), 1000^2 cells
        eval=VectorEval(grid_n=300, n_samples=10_000, normalize=NormalizeConfig(grid_n=1000, grid_widen=2.0)),
    ),
    # tests: seconds
    "smoke": ContrastConfig(
        datasets=("moons",),
        models=("nsf", "ebm_dsm", "ebm_ssm", "ebm_nce", "ebm_cd"),
        train=SMOKE_TRAIN,
        model_options={
            "nsf": {"num_layers": 2, "hidden": (16,)},
            "ebm_dsm": {"hidden": (32, 32), "sample_temps": 20},
            "ebm_ssm": {"hidden": (32, 32), "sample_temps": 20},
            "ebm_nce": {
                "hidden": (32, 32),
                "sample_temps": 20,
                "nce_noise": "gmm",
                "nce_noise_components": 3,
            },
            "ebm_cd": {"hidden": (32, 32), "sample_temps": 20, "cd_chains": 64, "cd_steps": 5},
        },
        eval=VectorEval(
            grid_n=40,
            n_samples=300,
            normalize=NormalizeConfig(ais=AISConfig(num_chains=100, num_temps=30, num_pilot=32), grid_n=100),
        ),
        n_train=2000,
        n_test=500,
        parzen_samples=1000,
        parzen_val=500,
        patches=PatchesConfig(
            n_train=3000,
            n_test=1000,
            train=dataclasses.replace(
                SMOKE_TRAIN, steps=60, batch_size=256, lr=1e-2, steps_per_dispatch=30, checkpoint_every=None
            ),
            model_options={
                "ar_bernoulli": {"hidden": (16,)},
                "ebm_exact_ml": {"hidden": (16,)},
                "ebm_pseudo_lik": {"hidden": (16,)},
                "ebm_bin_nce": {"hidden": (16,)},
                "ebm_bin_cd": {"hidden": (16,), "cd_chains": 64},
            },
            normalize=NormalizeConfig(ais=AISConfig(num_chains=200, num_temps=30, num_pilot=16)),
        ),
    ),
}

DEMO_PRESETS: dict[str, DemosConfig] = {
    "default": DemosConfig(),
    "smoke": DemosConfig(
        train=TrainConfig(
            steps=300,
            batch_size=128,
            lr=3e-3,
            warmup_steps=10,
            eval_every=100,
            steps_per_dispatch=50,
            checkpoint_every=None,
            progress=False,
        ),
        network={"hidden": (32, 32)},
        grid_n=60,
        figure_grid_n=40,
        n_train=2000,
        n_test=500,
    ),
}
