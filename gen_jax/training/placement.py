"""Where the training data and state live: a 1-D "data" mesh over the devices, replicated state, and
the global training array of one or several hosts (every leaf of a batch pytree alike)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def data_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D mesh with axis "data" over the first `num_devices` devices (all by default)."""
    devices = jax.devices()
    n = len(devices) if num_devices is None else num_devices
    if not 1 <= n <= len(devices):
        raise ValueError(f"num_devices={num_devices}, but {len(devices)} devices are visible")
    return Mesh(np.asarray(devices[:n]), ("data",))


def replicate(tree, mesh: Mesh):
    """Every leaf of `tree` (host values, the same on every process) as one array replicated over the
    mesh. On one host a device_put; on several, each process supplies its own (identical) copy."""
    sharding = NamedSharding(mesh, PartitionSpec())
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def one(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree_util.tree_map(one, tree)


def global_training_data(local_data, mesh: Mesh):
    """The training array the loop draws batches from.

    One host: the whole array, replicated over the mesh's devices (each device draws from it).
    Several hosts (`jax.process_count() > 1`, after `jax.distributed.initialize()`): each process
    passes ONLY ITS OWN SHARD of the examples; the global array is their concatenation in process
    order, sharded along "data" (each device holds a slice of the examples), and a batch of global
    indices is gathered across devices by XLA. So the same global data gives the same batches, and
    the same parameters, on one host or many. Every process must pass the same number of examples,
    a multiple of its local device count.
    """
    if jax.process_count() == 1:
        data = jax.tree_util.tree_map(jnp.asarray, local_data)
        return replicate(data, mesh) if mesh.size > 1 else data
    return jax.tree_util.tree_map(lambda leaf: _global_leaf(leaf, mesh), local_data)


def _global_leaf(local_data, mesh: Mesh):
    from jax.experimental import multihost_utils

    local = np.asarray(local_data)
    counts = np.asarray(multihost_utils.process_allgather(np.asarray(len(local))))
    n_local_devices = len([d for d in mesh.devices.flat if d.process_index == jax.process_index()])
    if len(set(counts.tolist())) != 1 or len(local) % n_local_devices:
        raise ValueError(
            f"multi-host training: every process must pass the same number of training examples, a "
            f"multiple of its {n_local_devices} local devices; the processes passed {counts.tolist()}. "
            "Give each host an equal shard (e.g. drop the remainder: data[: n // k * k])."
        )
    return jax.make_array_from_process_local_data(NamedSharding(mesh, PartitionSpec("data")), local)


def first_examples(data, n: int, mesh: Mesh):
    """data[:n] (every leaf) on every process (the examples `model.init` sees): the same on every
    host, so a data-dependent init gives every host the same parameters."""
    if jax.process_count() == 1:
        return jax.tree_util.tree_map(lambda a: a[:n], data)
    take = jax.jit(lambda a: a[:n], out_shardings=NamedSharding(mesh, PartitionSpec()))
    return jax.tree_util.tree_map(lambda a: np.asarray(take(a)), data)


def num_examples(data) -> int:
    """Examples in a training array or batch pytree (its leaves share the leading axis)."""
    return int(jax.tree_util.tree_leaves(data)[0].shape[0])
