"""XLA:CPU compile options for the train step, chosen by its size, and compiled at the first call."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
from jax.sharding import Mesh

from gen_jax.training.config import TrainConfig

# XLA:CPU compile options for small train steps. Its MLIR fusion emitters (its default since 2025)
# make steady-state steps faster but hold more memory while compiling a small step and take longer
# over it (`make bench-families`, variant `other_emitters`, measures both). A small model's run is a
# few seconds of steps after its compilation, so below SMALL_STEP_FLOPS per optimizer step gen_jax
# compiles with the earlier LLVM emitters; above it, with XLA's defaults. Options this XLA does not
# know are dropped with a warning.
CPU_COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False}
SMALL_STEP_FLOPS = 2.5e8  # between the 2-D flows and EBMs and the 2-D diffusion / GAN steps


def compiler_options_for(cfg: TrainConfig, flops: float | None, mesh: Mesh | None = None) -> dict:
    """The XLA options a train step of `flops` per optimizer step compiles with (see above)."""
    devices = mesh.devices.flat if mesh is not None else jax.devices()
    if next(iter(devices)).platform != "cpu":
        return {}
    if cfg.cpu_compiler_options is not None:
        return dict(cfg.cpu_compiler_options)
    small = flops is not None and math.isfinite(flops) and flops < SMALL_STEP_FLOPS
    return dict(CPU_COMPILER_OPTIONS) if small else {}


def step_flops(lowered) -> float | None:
    """XLA's flop count of a lowered computation (a scanned loop's body counted once), or None."""
    try:
        cost = lowered.cost_analysis()
    except Exception:  # not every backend or version offers it
        return None
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"]) if cost and "flops" in cost else None


class CompiledOnFirstCall:
    """A jitted function lowered and compiled at its first call with options chosen from the
    lowered program (`choose(lowered) -> dict`), so that the compilation still counts in the first
    dispatch's time. Options this XLA rejects are dropped with a warning (they are XLA debug
    options, which come and go)."""

    def __init__(self, jitted, choose: Callable[[Any], dict]):
        self.jitted, self.choose, self.compiled, self.options = jitted, choose, None, None

    def __call__(self, *args):
        if self.compiled is None:
            lowered = self.jitted.lower(*args)
            self.options = self.choose(lowered)
            try:
                self.compiled = lowered.compile(compiler_options=self.options or None)
            except jax.errors.JaxRuntimeError as e:
                if not self.options or "compile option" not in str(e):
                    raise
                import warnings

                warnings.warn(f"XLA rejected {self.options}: {e}; using its defaults", stacklevel=2)
                self.options = {}
                self.compiled = lowered.compile()
        return self.compiled(*args)
