"""Orbax checkpoints of the train state, and restoring a run's evaluation parameters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax


class Checkpointer:
    """Orbax checkpoints of the train state under `directory`."""

    def __init__(self, directory: Path, max_to_keep: int):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.directory = Path(directory).absolute()
        self.manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        )

    def latest_step(self) -> int | None:
        """The step of the newest checkpoint, or None."""
        return self.manager.latest_step()

    def save(self, state: Any) -> None:
        """Save `state` at its step (once per step)."""
        step = int(state.step)
        if self.manager.latest_step() != step:
            self.manager.save(step, args=self._ocp.args.StandardSave(state))

    def restore(self, like: Any, step: int | None = None) -> Any:
        """The state saved at `step` (default: the newest), with the structure and dtypes of `like`."""
        step = self.manager.latest_step() if step is None else step
        abstract = jax.tree_util.tree_map(self._ocp.utils.to_shape_dtype_struct, like)
        return self.manager.restore(step, args=self._ocp.args.StandardRestore(abstract))

    def wait(self) -> None:
        """Block until pending saves are on disk."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        """Finish pending saves and release the manager."""
        self.manager.close()


def truncate_jsonl(path: Path, last_step: int) -> float:
    """Drop rows written after `last_step` (by a run killed after its last checkpoint).

    Returns the training time recorded up to `last_step` (0.0 if none), so that time limits
    and reported times cover the whole run across resumes.
    """
    if not path.exists():
        return 0.0
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    keep = [row for row in rows if row.get("step", 0) <= last_step]
    path.write_text("".join(json.dumps(row) + "\n" for row in keep))
    times = [row["time"] for row in keep if "time" in row]
    return float(times[-1]) if times else 0.0
