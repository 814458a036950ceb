"""Training: the loop (`train`), its configuration, optimizer, placement on devices, compile options,
checkpoints and monitoring, each in its own module."""

from gen_jax.training.checkpoint import Checkpointer
from gen_jax.training.compiler import CPU_COMPILER_OPTIONS, SMALL_STEP_FLOPS, compiler_options_for, step_flops
from gen_jax.training.config import TrainConfig
from gen_jax.training.loop import (
    NonFiniteLossError,
    TrainResult,
    TrainState,
    init_state,
    make_multi_step,
    make_train_step,
    random_batches,
    restore_params,
    sequential_batches,
    train,
)
from gen_jax.training.monitor import Monitor, Progress
from gen_jax.training.optimizer import learning_rate, make_optimizer
from gen_jax.training.placement import data_mesh, global_training_data, replicate
from gen_jax.training.stream import Stream, shards_from_npy

__all__ = [
    "CPU_COMPILER_OPTIONS",
    "Checkpointer",
    "Monitor",
    "NonFiniteLossError",
    "Progress",
    "SMALL_STEP_FLOPS",
    "Stream",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "compiler_options_for",
    "data_mesh",
    "global_training_data",
    "init_state",
    "learning_rate",
    "make_multi_step",
    "make_optimizer",
    "make_train_step",
    "random_batches",
    "replicate",
    "restore_params",
    "sequential_batches",
    "shards_from_npy",
    "step_flops",
    "train",
]
