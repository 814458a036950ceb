"""The training configuration: every field one knob of `gen_jax.training.train`."""

from __future__ import annotations

import dataclasses

from gen_jax.core import ConfigError


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How `train` runs: the optimizer, its schedule, the loop, evaluation, checkpoints, devices.

    steps, batch_size, lr: optimizer steps, examples per step, peak learning rate.
    schedule: "cosine" (linear warmup, then cosine decay to end_lr_fraction * lr) or "constant"
      (after the warmup). clip_norm: global-norm gradient clipping (None: off). weight_decay:
      decoupled (AdamW) when > 0. b1, b2: Adam's moment decays. ema_decay: keep an exponential
      moving average of the parameters (evaluated instead of them).
    steps_per_dispatch: optimizer steps per jitted lax.scan (the host sees the device once per block).
    eval_every: steps between held-out evaluations (rounded up to whole dispatches; None: at the end
      only); eval_size: held-out examples per evaluation.
    checkpoint_every, max_to_keep: Orbax checkpoints (rounded up to whole dispatches; None: at the
      end only). time_limit_s: stop, with a checkpoint, after this much training time.
    seed: every random draw of the run derives from it (batches and loss keys by fold_in(., step)).
    progress: a bar on a terminal, periodic lines otherwise (`progress_every_s` apart), and the same
      lines in the run's train.log.
    init_examples: training examples `model.init` sees (data-dependent inits, standardization).
    num_devices: data-parallel over this many devices (None: all visible).
    cpu_compiler_options: XLA options for the CPU train step; None picks them by the step's size,
      {} is XLA's defaults, any other dict is used as given (`gen_jax.training.compiler`).
    tensorboard: write TensorBoard event files beside metrics.jsonl (when there is a workdir).
    patience: early stopping: stop when the held-out NLL has not improved for this many evaluations
      (every `eval_every` steps), and return the parameters of the best evaluation (None: train all
      steps, return the last parameters). Under the cosine schedule evaluations in the first half of
      the steps keep the best parameters but do not count: the validation NLL plateaus while the rate
      is high and falls as it decays.
    """

    steps: int = 3000
    batch_size: int = 512
    lr: float = 1e-3
    schedule: str = "cosine"
    warmup_steps: int = 100
    end_lr_fraction: float = 0.0
    clip_norm: float | None = 1.0
    weight_decay: float = 0.0
    b1: float = 0.9
    b2: float = 0.999
    ema_decay: float | None = None
    steps_per_dispatch: int = 100
    eval_every: int | None = None
    eval_size: int = 2048
    checkpoint_every: int | None = 1000
    max_to_keep: int = 2
    time_limit_s: float | None = None
    seed: int = 0
    progress: bool = True
    progress_every_s: float = 30.0
    init_examples: int = 1024
    num_devices: int | None = None
    cpu_compiler_options: dict | None = None
    tensorboard: bool = True
    patience: int | None = None

    def __post_init__(self):
        if self.steps < 0 or self.batch_size < 1 or self.steps_per_dispatch < 1:
            raise ConfigError(f"steps must be >= 0, batch_size and steps_per_dispatch >= 1: {self}")
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError(f"unknown schedule {self.schedule!r}; choose 'cosine' or 'constant'")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.patience is not None and (self.patience < 1 or not self.eval_every):
            raise ConfigError(
                "early stopping (patience >= 1) needs eval_every: the steps between evaluations"
            )
