"""Data parallelism on 8 simulated CPU devices: same parameters as on 1 device for the same global batch."""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import jax, numpy as np
    from gen_jax.data.toy2d import get_toy
    from gen_jax.models import make_model
    from gen_jax.training import TrainConfig, train
    assert len(jax.devices()) == 8, jax.devices()
    x = np.asarray(get_toy("moons").sample(jax.random.key(0), 2048))
    model = make_model("nsf", (2,), num_layers=2, hidden=(16,))
    cfg = TrainConfig(steps=40, batch_size=64, steps_per_dispatch=20, progress=False, checkpoint_every=None)
    one = train(model, x, cfg.__class__(**{**cfg.__dict__, "num_devices": 1})).params
    eight = train(model, x, cfg.__class__(**{**cfg.__dict__, "num_devices": 8})).params
    diffs = [float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in
             zip(jax.tree_util.tree_leaves(one), jax.tree_util.tree_leaves(eight))]
    scale = max(float(np.max(np.abs(np.asarray(a)))) for a in jax.tree_util.tree_leaves(one))
    print("MAXDIFF", max(diffs), "SCALE", scale)
    # the 8-device step really is data-parallel: XLA partitioned it and all-reduces the gradients
    from gen_jax.training import data_mesh, init_state, make_multi_step, make_optimizer, make_train_step
    from gen_jax.training import random_batches
    from jax.sharding import NamedSharding, PartitionSpec
    mesh = data_mesh(8)
    opt = make_optimizer(cfg)
    state = init_state(model, jax.random.key(0), x[:64], opt, False)
    state, data = jax.device_put((state, x), NamedSharding(mesh, PartitionSpec()))
    step = make_multi_step(make_train_step(model, opt, None), random_batches(64), 1, 0, mesh)
    hlo = step.lower(state, data).compile().as_text()
    print("ALLREDUCE", "all-reduce" in hlo)
    try:
        train(model, x, cfg.__class__(**{**cfg.__dict__, "num_devices": 8, "batch_size": 60}))
    except ValueError as e:
        print("ERROR", e)
    """
)


def test_one_and_eight_devices_agree():
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    env = {**os.environ, "XLA_FLAGS": flags.strip(), "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("MAXDIFF"))
    maxdiff, scale = float(line.split()[1]), float(line.split()[3])
    assert maxdiff < 1e-4 * max(scale, 1.0), line
    assert "ALLREDUCE True" in out.stdout
    err = next(ln for ln in out.stdout.splitlines() if ln.startswith("ERROR"))
    assert "does not divide over 8 devices" in err and "multiple of 8 (e.g. 64)" in err


@pytest.mark.parametrize("bad", [0, 9])
def test_bad_device_count(bad):
    import jax

    from gen_jax.training import data_mesh

    if bad > len(jax.devices()) or bad == 0:
        with pytest.raises(ValueError, match="devices are visible"):
            data_mesh(bad)
