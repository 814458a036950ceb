"""The training loop: lowers NLL, is compiled once, resumes exactly, stops loudly on NaN."""

import dataclasses
import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.data.toy2d import get_toy
from gen_jax.evaluation import evaluate_nll
from gen_jax.models import make_model
from gen_jax.training import NonFiniteLossError, TrainConfig, restore_params, train

CFG = TrainConfig(
    steps=60,
    batch_size=128,
    lr=3e-3,
    warmup_steps=5,
    steps_per_dispatch=10,
    checkpoint_every=20,
    progress=False,
)


@pytest.fixture(scope="module")
def moons():
    toy = get_toy("moons")
    return np.asarray(toy.sample(jax.random.key(0), 4000)), np.asarray(toy.sample(jax.random.key(1), 1000))


def _small_flow():
    return make_model("realnvp", (2,), num_layers=2, hidden=(16,), standardize="none")  # the loop alone


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def test_training_lowers_nll(moons):
    train_x, test_x = moons
    model = _small_flow()
    params0 = model.init(jax.random.key(0), jnp.asarray(train_x[:128]))
    before, _, _ = evaluate_nll(model, params0, test_x, jax.random.key(0))
    result = train(
        model, train_x, dataclasses.replace(CFG, steps=300, steps_per_dispatch=50), eval_data=test_x
    )
    after, se, _ = evaluate_nll(model, result.params, test_x, jax.random.key(0))
    assert after < before - 0.3, (before, after)
    evals = [r["eval_nll"] for r in result.history if "eval_nll" in r]
    assert evals and abs(evals[-1] - after) < 0.2
    assert result.history[0]["loss"] > result.history[-2]["loss"]


def test_steps_are_compiled_in_one_scan(moons):
    """The loss is traced a handful of times, not once per step: jit and scan are in place."""
    traces = []
    base = _small_flow()

    def loss(params, batch, key):
        traces.append(1)
        return base.loss(params, batch, key)

    model = base.replace(loss=loss)
    train(model, moons[0], dataclasses.replace(CFG, steps=100, checkpoint_every=None))
    assert len(traces) <= 2, f"loss traced {len(traces)} times for 100 steps"


def test_result_does_not_depend_on_steps_per_dispatch(moons):
    a = train(_small_flow(), moons[0], dataclasses.replace(CFG, steps_per_dispatch=10, checkpoint_every=None))
    b = train(_small_flow(), moons[0], dataclasses.replace(CFG, steps_per_dispatch=20, checkpoint_every=None))
    for x, y in zip(_leaves(a.params), _leaves(b.params), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


class Crash(RuntimeError):
    pass


@pytest.mark.parametrize("kill", ["crash", "interrupt"])
def test_resume_after_kill_matches_unbroken_run(moons, tmp_path, kill):
    cfg = dataclasses.replace(CFG, eval_every=10, ema_decay=0.9)
    unbroken = train(_small_flow(), moons[0], cfg, tmp_path / "unbroken")

    calls = []

    def dies_at_step_30(params):
        calls.append(1)
        if len(calls) == 3:  # the evaluation after step 30
            raise Crash("simulated crash") if kill == "crash" else KeyboardInterrupt()
        return {"calls": len(calls)}

    workdir = tmp_path / "killed"
    with pytest.raises((Crash, KeyboardInterrupt)):
        train(_small_flow(), moons[0], cfg, workdir, eval_fn=dies_at_step_30)
    # a crash keeps the periodic checkpoint (step 20); an interrupt saves the current state (step 30)
    from gen_jax.training import Checkpointer

    ckpt = Checkpointer(workdir / "checkpoints", 2)
    assert ckpt.latest_step() == (20 if kill == "crash" else 30)
    ckpt.close()
    with pytest.raises(FileExistsError, match="resume"):
        train(_small_flow(), moons[0], cfg, workdir)
    resumed = train(_small_flow(), moons[0], cfg, workdir, resume=True)
    assert resumed.resumed_from in (20, 30)
    assert int(resumed.state.step) == cfg.steps
    # bit for bit: the resumed run replays the same batches and keys as the unbroken one
    for x, y in zip(_leaves(unbroken.state), _leaves(resumed.state), strict=True):
        np.testing.assert_array_equal(x, y)
    steps = [json.loads(line)["step"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    train_steps = [s for s in steps if s % 10 == 0]
    assert train_steps == sorted(train_steps), "metrics.jsonl rows must not repeat after a resume"
    # the saved parameters load back for evaluation
    restored = restore_params(_small_flow(), workdir, jnp.asarray(moons[0][:128]))
    for x, y in zip(_leaves(resumed.params), _leaves(restored), strict=True):
        np.testing.assert_array_equal(x, y)


def _first_step_drawing(row, n, batch_size, seed, max_steps):
    """The 0-based step whose batch (drawn as the loop draws it) first contains `row`."""
    for step in range(max_steps):
        data_key, _ = jax.random.split(jax.random.fold_in(jax.random.key(seed), step))
        if row in np.asarray(jax.random.randint(data_key, (batch_size,), 0, n)):
            return step
    return None


def test_nan_loss_names_the_step(moons, tmp_path):
    data = np.array(moons[0])
    cfg = dataclasses.replace(CFG, batch_size=8)
    # poison one row that is first drawn after the first checkpoint (step 20)
    row, step = next(
        (r, s)
        for r in range(len(data))
        if (s := _first_step_drawing(r, len(data), cfg.batch_size, cfg.seed, cfg.steps)) is not None
        and 25 <= s < 55
    )
    data[row] = np.nan
    last_good = (step // cfg.checkpoint_every) * cfg.checkpoint_every
    with pytest.raises(
        NonFiniteLossError, match=rf"at step {step + 1} \(last good checkpoint: step {last_good} "
    ):
        train(_small_flow(), data, cfg, tmp_path / "nan")


def test_bad_data_shape(moons):
    with pytest.raises(ValueError, match=r"expected \(batch, 2\)"):
        train(_small_flow(), moons[0][:, :1], CFG)


def test_sequential_batches_take_consecutive_runs_and_reject_a_ragged_end():
    from gen_jax.training import sequential_batches

    data = jnp.arange(24.0).reshape(12, 2)
    fn = jax.jit(sequential_batches(4))
    np.testing.assert_array_equal(fn(data, None, 1), data[4:8])
    np.testing.assert_array_equal(fn(data, None, 4), data[4:8])  # wraps after 3 batches
    with pytest.raises(ValueError, match="multiple of 5"):
        sequential_batches(5)(data, None, 0)


def test_cpu_compile_options_by_step_size_and_unknown_ones_fall_back(moons):
    """Small steps compile with CPU_COMPILER_OPTIONS, large ones with XLA's defaults, a config's
    own dict wins; an option this XLA does not know falls back to its defaults with a warning; the
    emitters change how XLA compiles, not what the step computes."""
    from gen_jax.training import CPU_COMPILER_OPTIONS, SMALL_STEP_FLOPS, compiler_options_for, step_flops
    from gen_jax.training.compiler import CompiledOnFirstCall

    assert compiler_options_for(CFG, 1e6) == CPU_COMPILER_OPTIONS
    assert compiler_options_for(CFG, 10 * SMALL_STEP_FLOPS) == {} == compiler_options_for(CFG, None)
    assert compiler_options_for(dataclasses.replace(CFG, cpu_compiler_options={"a": 1}), 1e6) == {"a": 1}
    assert step_flops(jax.jit(lambda x: x @ x).lower(jnp.ones((8, 8)))) == pytest.approx(2 * 8**3, rel=0.1)
    f = CompiledOnFirstCall(jax.jit(lambda x: x * 2), lambda lowered: {"xla_no_such_option_anywhere": True})
    with pytest.warns(UserWarning, match="using its defaults"):
        np.testing.assert_array_equal(f(jnp.ones(3)), 2 * np.ones(3))
    np.testing.assert_array_equal(f(jnp.ones(3)), 2 * np.ones(3))  # compiled once, kept
    assert f.options == {}
    cfg = dataclasses.replace(CFG, checkpoint_every=None)
    a = train(_small_flow(), moons[0], cfg)
    b = train(_small_flow(), moons[0], dataclasses.replace(cfg, cpu_compiler_options={}))
    for x, y in zip(_leaves(a.params), _leaves(b.params), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)


def test_model_families_are_imported_when_first_built():
    """`import gen_jax.models` loads no family (and so not distrax, diffrax or blackjax)."""
    import subprocess
    import sys

    code = (
        "import sys, gen_jax.models as m; assert 'distrax' not in sys.modules, 'distrax'; "
        "assert 'gen_jax.models.diffusion' not in sys.modules; m.make_model('nsf', (2,)); "
        "assert 'distrax' in sys.modules and 'diffrax' not in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


def test_a_stream_read_from_disk_in_pieces_trains_exactly_like_the_array(tmp_path):
    """Data larger than memory: the training set saved as three .npy shards and streamed from disk
    (memory-mapped, one batch at a time) gives bit for bit the parameters of the in-memory path on the
    same batch sequence, including across an interrupted and resumed run."""
    from gen_jax.training import Stream, sequential_batches, shards_from_npy

    x = np.random.default_rng(0).normal(size=(3 * 256, 2)).astype(np.float32)
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"shard{i}.npy")
        np.save(paths[-1], x[i * 256 : (i + 1) * 256])
    batches = shards_from_npy(paths, batch_size=64, seed=0)
    model = make_model("realnvp", 2, num_layers=2, hidden=(8,))
    cfg = TrainConfig(steps=30, batch_size=64, steps_per_dispatch=8, checkpoint_every=8, progress=False)
    order = list(itertools.islice(batches(0), 30))  # the same batches, in memory, read sequentially
    data = np.concatenate(order)
    in_memory = train(model, data, cfg, batch_fn=sequential_batches(64)).params
    example = data[: cfg.init_examples]  # what the in-memory init sees: the standardization's statistics
    streamed = train(model, Stream(batches, example=example), cfg).params
    for a, b in zip(jax.tree_util.tree_leaves(in_memory), jax.tree_util.tree_leaves(streamed), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    calls = []

    def dies_after_step_16(params):  # evaluations after each 8-step dispatch: the second one crashes
        calls.append(1)
        if len(calls) == 2:
            raise Crash("simulated crash")
        return {}

    with_eval = dataclasses.replace(cfg, eval_every=8)
    with pytest.raises(Crash):
        train(
            model, Stream(batches, example=example), with_eval, tmp_path / "run", eval_fn=dies_after_step_16
        )
    resumed = train(model, Stream(batches, example=example), with_eval, tmp_path / "run", resume=True)
    assert resumed.resumed_from == 8  # the stream restarted at step 8, not at its beginning
    resumed = resumed.params
    for a, b in zip(jax.tree_util.tree_leaves(in_memory), jax.tree_util.tree_leaves(resumed), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
