"""The side-by-side benchmark's plumbing (no peer venv needed): the exported data and batch order,
gen_jax training on exactly those batches, and the tables' ratios."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from experiments.bench_peers import batch_order, export_data, load_export, markdown, speed_ratios
from gen_jax.core import Kind, Model
from gen_jax.evaluation.vector import load_vector_data
from gen_jax.training import TrainConfig, sequential_batches, train


def test_export_round_trips_the_bench_arrays_and_an_epochwise_order(tmp_path):
    steps = 120  # 61,440 indices: crosses into a second epoch
    f = load_export(export_data(tmp_path / "moons.npz", "moons", steps))
    data = load_vector_data("moons", 50_000, 10_000, seed=0)  # what bench_flows.run_once trains on
    np.testing.assert_array_equal(f["train"], data.train)
    np.testing.assert_array_equal(f["test"], data.test)
    assert float(f["true_entropy"]) == pytest.approx(data.true_entropy)
    order = f["order"]
    assert order.shape == (steps, 512) and order.dtype == np.int32
    flat = order.reshape(-1)
    np.testing.assert_array_equal(np.sort(flat[:50_000]), np.arange(50_000))  # one epoch: a permutation
    assert len(np.unique(flat[50_000:])) == flat.size - 50_000  # the next epoch starts fresh
    np.testing.assert_array_equal(order, batch_order(50_000, steps))  # deterministic


def _probe_model() -> Model:
    """A one-parameter model whose metrics identify the batch it was given (in order)."""
    weights = jnp.arange(1.0, 5.0)

    def loss(params, batch, key):
        fingerprint = jnp.sum(batch[:, 0] * weights) + 1000.0 * jnp.sum(batch[:, 1])
        return jnp.mean((batch - params["w"][None]) ** 2), {"fingerprint": fingerprint}

    return Model(
        name="probe",
        event_shape=(2,),
        kind=Kind.NONE,
        init=lambda key, x: {"w": jnp.zeros(2)},
        loss=loss,
        log_prob=lambda p, x, k: jnp.zeros(x.shape[0]),
        sample=lambda p, k, n: jnp.zeros((n, 2)),
    )


def test_training_on_an_ordered_batch_sees_exactly_those_batches():
    data = np.arange(80, dtype=np.float32).reshape(40, 2)
    order = np.random.default_rng(1).integers(0, 40, (7, 4)).astype(np.int32)
    cfg = TrainConfig(
        steps=7, batch_size=4, steps_per_dispatch=1, checkpoint_every=None, progress=False, clip_norm=None
    )
    res = train(_probe_model(), data[order].reshape(-1, 2), cfg, batch_fn=sequential_batches(4))
    seen = [row["fingerprint"] for row in res.history if "fingerprint" in row]
    b = data[order]
    expect = (b[:, :, 0] * np.arange(1, 5)).sum(1) + 1000 * b[:, :, 1].sum(1)
    np.testing.assert_allclose(seen, expect)


def test_run_once_rejects_a_batch_order_too_short():
    from experiments.benchlib import run_once

    with pytest.raises(ValueError, match="does not cover"):
        run_once("realnvp", "moons", 10, 0, 5, batch_order=np.zeros((5, 512), np.int32))


def _row(lib, model, dataset, sps):
    return dict(
        library=lib,
        model=model,
        dataset=dataset,
        steps_per_sec=sps,
        first_step_seconds=1.0,
        total_seconds=2.0,
        test_nll=2.5,
        gap=0.1,
        peak_rss_mb=500.0,
        params=100,
    )


def test_speed_ratios_and_table():
    rows = [
        _row("gen_jax", "nsf", "moons", 240.0),
        _row("flowjax", "nsf", "moons", 120.0),
        _row("normflows", "nsf", "moons", 60.0),
        _row("gen_jax", "realnvp", "moons", 100.0),
        _row("flowjax", "realnvp", "moons", 400.0),  # normflows missing
    ]
    r = {(x["model"], x["dataset"]): x for x in speed_ratios(rows)}
    assert r["nsf", "moons"]["ratio_flowjax"] == pytest.approx(2.0)
    assert r["nsf", "moons"]["ratio_normflows"] == pytest.approx(4.0)
    assert r["realnvp", "moons"]["ratio_flowjax"] == pytest.approx(0.25)
    assert r["realnvp", "moons"]["ratio_normflows"] is None
    md = markdown(rows, dict(steps=3000, runs=3, machine="test box", versions="v", entropy={"moons": 2.39}))
    assert "| nsf | moons | 240 | 120 | 60 | 2.00x | 4.00x |" in md
    assert "| realnvp | moons | 100 | 400 | - | 0.25x | - |" in md
    assert "test box" in md and "What differs" in md


def test_scale_relative_to_one_device():
    from experiments.bench_scale import add_relative

    rows = [
        dict(model="vae", batch=64, platform="cpu:cpu", devices=1, steps_per_sec=10.0),
        dict(model="vae", batch=64, platform="cpu:cpu", devices=2, steps_per_sec=5.0),
        dict(model="glow", batch=64, platform="cpu:cpu", devices=2, steps_per_sec=5.0),
    ]
    add_relative(rows)
    assert [r["relative"] for r in rows] == [1.0, 0.5, None]


BENCH_MAINS = {  # each benchmark's command line and an earlier flag that must still reach its key
    "bench_flows": ("experiments.bench_flows", ["--steps-per-dispatch", "7"], "steps_per_dispatch: 7"),
    "bench_families": ("experiments.bench_families", ["--families", "nsf,vae"], "- vae"),
    "bench_scale": ("experiments.bench_scale", ["--no-real", "--devices", "1,2"], "no_real: true"),
    "bench_peers": (
        "experiments.bench_peers.__main__",
        ["--peer-python", "/p/python"],
        "peer_python: /p/python",
    ),
    "bench_images_peers": (
        "experiments.bench_images_peers.__main__",
        ["--peer-python", "/p/python", "--torch-threads", "2"],
        "torch_threads: 2",
    ),
}


@pytest.mark.parametrize("name", BENCH_MAINS)
def test_benchmark_cli_unknown_key_is_one_line_and_exit_2(name, capsys, tmp_path):
    import importlib

    module, flags, shown = BENCH_MAINS[name]
    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as e:
        main([f"out={tmp_path}", "nonsense=1"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: nonsense") and "valid keys: " in err[0], err
    assert list(tmp_path.iterdir()) == []  # nothing ran
    main([*flags, "--show"])  # the earlier flags (the Makefile's --peer-python too) are shorthands now
    assert shown in capsys.readouterr().out
