"""Several hosts: two processes (jax.distributed over localhost, two CPU devices each, gloo
collectives), each passing only its own half of the training data, train to the same parameters
as one process with all the data; only process 0 writes the metrics."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import jax
import numpy as np

from gen_jax.models import make_model
from gen_jax.training import TrainConfig, train

WORKER = textwrap.dedent(
    """
    import json, sys
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    pid, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=pid)
    import numpy as np
    from tests.test_multihost import CFG, MODEL, full_data
    from gen_jax.training import train
    assert jax.process_count() == 2 and len(jax.devices()) == 4 and len(jax.local_devices()) == 2
    data = full_data()
    local = data[pid * 32 : (pid + 1) * 32]  # this host's shard only
    res = train(MODEL(), local, CFG, workdir=f"{out}/run", eval_data=data[:16])
    leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(res.state.params)]
    np.savez(f"{out}/params_{pid}.npz", *leaves)
    jax.distributed.shutdown()
    """
)
CFG = TrainConfig(
    steps=20,
    batch_size=8,
    lr=1e-2,
    warmup_steps=0,
    steps_per_dispatch=10,
    checkpoint_every=10,
    progress=False,
)


def MODEL():
    return make_model("realnvp", (2,), num_layers=2, hidden=(8,))


def full_data():
    return np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32) * [1.0, 2.0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_hosts_each_with_its_shard_match_one_host(tmp_path):
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "XLA_FLAGS": flags.strip(), "JAX_PLATFORMS": "cpu", "PYTHONPATH": root}
    port = _free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(pid), str(port), str(tmp_path)],
            env=env,
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for pid in (0, 1)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    ref = train(MODEL(), full_data(), CFG)  # one process, one device, all the data
    want = [np.asarray(x) for x in jax.tree_util.tree_leaves(ref.state.params)]
    for pid in (0, 1):
        got = np.load(tmp_path / f"params_{pid}.npz")
        for i, w in enumerate(want):
            np.testing.assert_allclose(got[f"arr_{i}"], w, rtol=1e-4, atol=1e-5)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [10, 20]  # written once, by process 0
    assert any("eval_nll" in r for r in rows)
    assert (tmp_path / "run" / "checkpoints").is_dir()
