"""Presets of the normalized-vs-unnormalized contrast (`experiments/contrast.py`, `make contrast`)."""

from __future__ import annotations

import dataclasses

from experiments.configs.toy2d import ALL_DATASETS
from gen_jax.likelihood.ais import AISConfig
from gen_jax.likelihood.normalize import NormalizeConfig
from gen_jax.training import TrainConfig


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """The two demonstrations: naive MLE of log p~ diverges; a sigmoid output is not a density."""

    dataset: str = "moons"
    score_model: str = "ebm_dsm"  # the same network trained by score matching, for contrast
    train: TrainConfig = TrainConfig(
        steps=3000, batch_size=512, lr=1e-3, warmup_steps=100, eval_every=250, checkpoint_every=None
    )
    model_kwargs: dict = dataclasses.field(default_factory=dict)  # kwargs of every demo network
    grid_n: int = 300  # cells a side for the true NLL's grid log Z (over the widened box)
    grid_widen: float = 1.0


@dataclasses.dataclass(frozen=True)
class PatchesConfig:
    """The tiny discrete world: 3x3 binary patches of binarized Fashion-MNIST (512 states)."""

    data_name: str = "fashion-mnist"
    data_dir: str | None = None  # None: $GEN_JAX_DATA_DIR
    size: int = 3
    threshold: int = 127
    n_train: int = 100_000
    n_test: int = 20_000
    models: tuple[str, ...] = ("freq_table", "bernoulli", "ar_bernoulli", "ebm_exact_ml", "ebm_pseudo_lik")
    closed_form: tuple[str, ...] = ("freq_table", "bernoulli")  # fitted by `init` on all of train (MLE)
    train: TrainConfig = TrainConfig(
        steps=3000, batch_size=1024, lr=3e-3, warmup_steps=100, checkpoint_every=None
    )
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    normalize: NormalizeConfig = NormalizeConfig(ais=AISConfig(num_chains=2000, num_temps=300))
    reverse_ais: bool = True  # sandwich log Z with reverse AIS from exact (enumerated) samples


@dataclasses.dataclass(frozen=True)
class ContrastConfig:
    datasets: tuple[str, ...]
    models: tuple[str, ...]
    train: TrainConfig
    train_overrides: dict = dataclasses.field(default_factory=dict)  # model -> TrainConfig fields
    model_kwargs: dict = dataclasses.field(default_factory=dict)  # model -> builder kwargs
    normalize: NormalizeConfig = NormalizeConfig()
    n_train: int = 50_000
    n_test: int = 10_000  # also the true samples of the sample MMD
    grid_n: int = 300  # density grid of the figures and grid mass
    n_samples: int = 10_000  # model samples for the figures and the MMD
    demos: DemoConfig | None = DemoConfig()
    patches: PatchesConfig | None = PatchesConfig()
    seed: int = 0
    out: str = "results/contrast"
    parzen_samples: int = 5000  # model samples per Parzen estimate (parzen.json); 0 turns it off
    parzen_val: int = 2000  # held-out training points that choose the Parzen bandwidth


MODELS = ("nsf", "maf", "ebm_dsm", "ebm_ssm", "gmm", "gan")
MODELS += ("diffusion",)  # two rows: its bound (lower_bound) and its probability-flow ODE (exact)
_KWARGS = {
    "maf": {"num_layers": 8, "activation": "silu"},
    # samples by AIS + resampling (SMC): 100 temperatures, then 5 MALA steps at the target
    "ebm_dsm": {"sample_temps": 100, "sample_rejuvenation": 5},
    "ebm_ssm": {"sample_temps": 100, "sample_rejuvenation": 5},
    "gmm": {"num_components": 10},
    # the bound and the ODE cost far more per point than a flow: 60x60 density grids
    "diffusion": {"grid_n": 60, "ode_grid_n": 60},
}
_TRAIN = {
    "gmm": {"steps": 3000, "lr": 1e-2},
    "ebm_ssm": {"steps": 3000},
    "gan": {"lr": 1e-3, "b1": 0.5},  # the implicit model: samples only, Parzen estimate in parzen.json
}

PRESETS: dict[str, ContrastConfig] = {
    # make contrast: every 2D dataset x (NSF, MAF, EBM by DSM, EBM by SSM, GMM), the two
    # demonstrations and the tiny discrete world; under 30 minutes on 2 CPU cores
    "default": ContrastConfig(
        datasets=ALL_DATASETS,
        models=MODELS,
        train=TrainConfig(steps=3000, batch_size=512, lr=2e-3, warmup_steps=200, checkpoint_every=1000),
        train_overrides=_TRAIN,
        model_kwargs=_KWARGS,
        # grid log Z over the data box widened by twice its width on each side (5x as wide), 1000^2 cells
        normalize=NormalizeConfig(grid_n=1000, grid_widen=2.0),
    ),
    # tests: seconds
    "smoke": ContrastConfig(
        datasets=("moons",),
        models=("nsf", "ebm_dsm", "ebm_ssm"),
        train=TrainConfig(
            steps=40, batch_size=128, steps_per_dispatch=20, checkpoint_every=20, progress=False
        ),
        model_kwargs={
            "nsf": {"num_layers": 2, "hidden": (16,)},
            "ebm_dsm": {"hidden": (32, 32), "sample_temps": 20},
            "ebm_ssm": {"hidden": (32, 32), "sample_temps": 20},
        },
        normalize=NormalizeConfig(ais=AISConfig(num_chains=100, num_temps=30, num_pilot=32), grid_n=100),
        n_train=2000,
        n_test=500,
        grid_n=40,
        n_samples=300,
        parzen_samples=1000,
        parzen_val=500,
        demos=DemoConfig(
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
            model_kwargs={"hidden": (32, 32)},
            grid_n=60,
        ),
        patches=PatchesConfig(
            n_train=3000,
            n_test=1000,
            train=TrainConfig(
                steps=60,
                batch_size=256,
                lr=1e-2,
                steps_per_dispatch=30,
                checkpoint_every=None,
                progress=False,
            ),
            model_kwargs={
                "ar_bernoulli": {"hidden": (16,)},
                "ebm_exact_ml": {"hidden": (16,)},
                "ebm_pseudo_lik": {"hidden": (16,)},
            },
            normalize=NormalizeConfig(ais=AISConfig(num_chains=200, num_temps=30, num_pilot=16)),
        ),
    ),
}


def get_config(preset: str) -> ContrastConfig:
    try:
        return PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}") from None
