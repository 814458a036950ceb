"""`make bench-images-peers`: the tables and the schedule (no torch needed), the export and a tiny gen_jax
run, and, where PyTorch is at hand (the peers' venv .venv-peers, or torch in this one), the PyTorch twins
against gen_jax: parameter counts, and log-probabilities and losses from the same parameters under the
same random draws."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.bench_images_peers import (
    FAMILIES,
    IMAGE_SHAPE,
    load_export,
    lr_factor,
    nats_to_bpd,
    save_export,
)
from experiments.bench_images_peers.gen_jax_run import (
    architecture_constants,
    build_model,
    export,
    flatten,
    run,
    unflatten,
)
from experiments.bench_images_peers.tables import best_torch, markdown, median_row, ratios

REPO = Path(__file__).resolve().parents[1]
TORCH_RUN = REPO / "experiments" / "bench_images_peers" / "torch_run.py"


def _peer_python() -> str | None:
    """A python with torch: the peers' venv (as `make bench-images-peers` uses), else this one."""
    for cand in (os.environ.get("PEERS_PYTHON"), str(REPO / ".venv-peers" / "bin" / "python")):
        if cand and Path(cand).exists():
            ok = subprocess.run([cand, "-c", "import torch"], capture_output=True, check=False)
            if ok.returncode == 0:
                return cand
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    return sys.executable


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *IMAGE_SHAPE), dtype=np.uint8)


# ----------------------------------------------------------------------------- no torch needed


def test_lr_factor_is_optax_schedule():
    import optax

    for steps, warmup in ((60, 10), (5, 10), (100, 0)):
        sched = optax.warmup_cosine_decay_schedule(0.0, 1.0, min(warmup, steps - 1), steps, 0.0)
        ours = [lr_factor(s, steps, warmup) for s in range(steps + 2)]
        np.testing.assert_allclose(ours, [float(sched(s)) for s in range(steps + 2)], atol=1e-6)


def _row(family, library, sps, ips, params=100):
    return dict(
        family=family,
        library=library,
        train_steps_per_sec=sps,
        train_images_per_sec=sps * 16,
        eval_images_per_sec=ips,
        first_step_seconds=3.0,
        eval_first_call_seconds=1.0,
        peak_rss_mb=900.0,
        params=params,
        init_test_bpd=8.0,
        final_test_bpd=6.0,
        final_train_bpd=6.1,
        batch=16,
        steps=60,
        version=library,
    )


def test_medians_ratios_and_tables():
    runs = [_row("vae", "gen_jax", s, 100.0) for s in (9.0, 11.0, 10.0)]
    runs[1]["eval_images_per_sec"] = float("nan")  # left out of the median
    med = median_row(runs)
    assert med["train_steps_per_sec"] == 10.0 and med["eval_images_per_sec"] == 100.0
    assert len(med["runs"]) == 3
    rows = [
        med,
        _row("vae", "torch_eager", 4.0, 200.0),
        _row("vae", "torch_compile", 5.0, 50.0),
        _row("glow", "gen_jax", 6.0, 30.0),
        _row("glow", "torch_eager", 3.0, 60.0),
    ]
    assert best_torch(rows, "vae", "train_steps_per_sec") == (5.0, "compile")
    assert best_torch(rows, "vae", "eval_images_per_sec") == (200.0, "eager")
    assert best_torch(rows, "vae", "first_step_seconds", higher=False) == (3.0, "eager")
    r = {x["family"]: x for x in ratios(rows)}
    assert r["vae"]["ratio_train"] == pytest.approx(2.0) and r["vae"]["ratio_eval"] == pytest.approx(0.5)
    assert r["glow"]["ratio_train"] == pytest.approx(2.0) and r["glow"]["torch_train_mode"] == "eager"
    meta = dict(
        steps=60, warmup=10, runs=3, eval_batch=128, eval_reps=5, data="random", machine="box", versions="v"
    )
    md = markdown(rows, meta)
    assert "| vae | 10.00 | 5.00 (compile) | 2.00x | 100 | 200 (eager) | 0.50x | 100 / 100 |" in md
    assert "| train steps/s | 10.00 | 4.00 | 5.00 | 2.00x (vs compile) |" in md
    assert "| eval images/s | 100 | 200 | 50 | 0.50x (vs eager) |" in md
    assert "box" in md and "What differs" in md and "not idle" not in md
    rows[1]["runs"] = [dict(rows[1], others_busy=0.6)]  # another process shared the cores
    assert "**The machine was not idle** (other work kept up to 60%" in markdown(rows, meta)
    assert nats_to_bpd(784 * np.log(2.0)) == pytest.approx(1.0)


def test_launch_parses_the_bench_line_and_measures_the_others_load():
    from experiments.bench_images_peers.__main__ import launch, measured

    r = measured([sys.executable, "-c", "print('noise'); print('BENCH ' + '{\"x\": 1}')"], "probe")
    assert r["x"] == 1 and 0.0 <= r.get("others_busy", 0.0) <= 1.0
    with pytest.raises(RuntimeError, match="probe failed"):
        launch([sys.executable, "-c", "import sys; sys.exit(3)"], "probe")


def _cpu_preset() -> tuple[dict, dict]:
    """The `cpu` preset of `make images`: (model -> options, model -> TrainConfig overrides)."""
    import experiments.configs.images as configs

    if hasattr(configs, "CPU"):
        setup = configs.CPU.setup
        return dict(setup.model_options), dict(setup.train_overrides)
    cpu = configs.PRESETS["cpu"]
    return dict(cpu.model_kwargs), dict(cpu.train_overrides)


def test_every_family_is_the_cpu_preset():
    options, overrides = _cpu_preset()
    for family, spec in FAMILIES.items():
        preset = dict(options[spec["model"]])
        for k, v in spec["kwargs"].items():
            assert preset.get(k) == v, (family, k)
        assert overrides[spec["model"]]["batch_size"] == spec["batch"], family


def test_export_round_trips_parameters_and_batches(tmp_path):
    images = _images(40)
    path = export(tmp_path / "vae.npz", "vae", 3, images, images[:8], "random", batch=8)
    ex = load_export(path)
    np.testing.assert_array_equal(ex["batches"], images[:24].reshape(3, 8, *IMAGE_SHAPE))
    assert ex["meta"]["family"] == "vae" and ex["meta"]["batch"] == 8
    model = build_model("vae")
    params = unflatten(model, ex["params"], images[:1])
    again = model.init(jax.random.key(0), jnp.asarray(images))
    for (pa, a), (pb, b) in zip(
        jax.tree_util.tree_flatten_with_path(params)[0],
        jax.tree_util.tree_flatten_with_path(again)[0],
        strict=True,
    ):
        assert pa == pb
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert ex["meta"]["params"] == sum(v.size for v in ex["params"].values())


TINY = {
    "vae": dict(latent_dim=2, encoder_channels=(4,), decoder_channels=(4,), dense_width=8, num_mixtures=1),
    "pixelcnn": dict(channels=4, num_layers=2, first_kernel=3, head_hidden=8, num_mixtures=1),
    "glow": dict(num_levels=1, steps_per_level=1, channels=4),
    "diffusion": dict(data="8bit", unet_channels=(8, 8), unet_patch=2, elbo_samples=2),
}


def test_glow_constants_are_exported_from_the_model_info(tmp_path):
    """Glow's fixed 1x1-convolution permutations and signs reach the export (from `model.info`, the
    public surface); models without such constants export none."""
    kwargs = dict(num_levels=2, steps_per_level=3, channels=4)
    consts = architecture_constants(build_model("glow", kwargs))
    assert set(consts) == {f"levels/{lv}/{k}" for lv in (0, 1) for k in ("perm", "sign")}
    for level, c in ((0, 4), (1, 8)):  # channels after each squeeze: 4 x 1, then 2 x 4 (half kept)
        perm, sign = consts[f"levels/{level}/perm"], consts[f"levels/{level}/sign"]
        assert perm.shape == (3, c, c) and sign.shape == (3, c)
        np.testing.assert_array_equal(perm.sum(1), 1.0)  # permutation matrices
        np.testing.assert_array_equal(np.abs(sign), 1.0)
    assert architecture_constants(build_model("vae", TINY["vae"])) == {}
    images = _images(16)
    path = export(tmp_path / "glow.npz", "glow", 2, images, images[:4], "random", kwargs=kwargs, batch=4)
    exported = load_export(path)["consts"]
    assert set(exported) == set(consts)
    for name, value in exported.items():
        np.testing.assert_array_equal(value, consts[name])


def test_gen_jax_child_trains_from_the_exported_parameters(tmp_path):
    images = _images(64, seed=1)
    path = export(tmp_path / "vae.npz", "vae", 4, images, images[:8], "random", kwargs=TINY["vae"], batch=8)
    row = run(str(path), 0, eval_reps=1, steps_per_dispatch=2)
    assert row["library"] == "gen_jax" and row["family"] == "vae"
    assert row["params"] == load_export(path)["meta"]["params"]
    for k in ("train_steps_per_sec", "eval_images_per_sec", "first_step_seconds", "peak_rss_mb"):
        assert row[k] > 0, k
    assert np.isfinite(row["init_test_bpd"]) and np.isfinite(row["final_test_bpd"])
    with pytest.raises(ValueError, match="no steady state"):
        run(str(path), 0, eval_reps=1, steps_per_dispatch=4)


# ----------------------------------------------------------------------------- against PyTorch


def _perturbed(params, seed: int = 0, scale: float = 0.05):
    """The initial parameters moved off their zeros, so that every layer (zero-initialised output
    convolutions, attention, the diffusion U-Net's last layers) shapes the numbers compared."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    rng = np.random.default_rng(seed)
    leaves = [np.asarray(v) + scale * rng.standard_normal(np.shape(v)).astype(np.float32) for v in leaves]
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(v) for v in leaves])


def _draws(family: str, kwargs: dict, x, key, loss_key) -> tuple[dict, dict]:
    """The random numbers gen_jax's log_prob(params, x, key) and loss(params, x, loss_key) draw, drawn
    here the way gen_jax draws them (dequantization u; VAE latent noise per example; diffusion times and
    noises), for the PyTorch twin to use the very same ones."""
    b = x.shape[0]
    if family == "glow":
        u = jax.random.uniform(key, x.shape, jnp.float32)
        return {"u": u}, {"u": jax.random.uniform(loss_key, x.shape, jnp.float32)}
    if family == "vae":

        def eps(k):
            keys = jax.random.split(k, b)
            z = [jax.random.normal(jax.random.split(ki)[1], (kwargs["latent_dim"],)) for ki in keys]
            return jnp.stack(z)

        return {"eps": eps(key)}, {"eps": eps(loss_key)}
    if family == "diffusion":
        us, epss, eps0s = [], [], []
        for ki in jax.random.split(key, b):
            k_t, k_eps, k_0 = jax.random.split(ki, 3)
            us.append(jax.random.uniform(k_t))
            epss.append(jax.random.normal(k_eps, (kwargs["elbo_samples"], *IMAGE_SHAPE)))
            eps0s.append(jax.random.normal(k_0, IMAGE_SHAPE))
        k_t, k_eps, k_0 = jax.random.split(loss_key, 3)
        loss = {
            "t0": jax.random.uniform(k_t),
            "eps": jax.random.normal(k_eps, x.shape),
            "eps0": jax.random.normal(k_0, x.shape),
        }
        return {"u": jnp.stack(us), "eps": jnp.stack(epss), "eps0": jnp.stack(eps0s)}, loss
    return {}, {}


def _check_file(path, family, kwargs, params, arrays=None) -> str:
    spec = FAMILIES[family]
    consts = architecture_constants(build_model(family, kwargs))
    meta = dict(family=family, model=spec["model"], kwargs=kwargs)
    return str(save_export(path, arrays or {}, flatten(params), consts, meta))


def _torch_check(peer_python, files) -> dict:
    out = subprocess.run([peer_python, str(TORCH_RUN), "--check", *files], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return {
        r["family"]: r
        for r in json.loads(next(x for x in out.stdout.splitlines() if x.startswith("BENCH "))[6:])
    }


# smaller than the benchmark's (compiles in seconds), with every piece of each architecture: PixelCNN
# first and later layers, two VAE levels, two Glow scales (both kinds of learned prior), the U-Net's two
# levels with attention on patches
CHECK_KWARGS = {
    "pixelcnn": dict(channels=8, num_layers=3, first_kernel=5, head_hidden=16, num_mixtures=3),
    "vae": dict(latent_dim=4, encoder_channels=(8, 16), decoder_channels=(16, 8), dense_width=32),
    "glow": dict(num_levels=2, steps_per_level=2, channels=8, num_blocks=1),
    "diffusion": dict(data="8bit", unet_channels=(16, 16), unet_patch=2, elbo_samples=3),
}


@pytest.fixture(scope="module")
def peer_python():
    py = _peer_python()
    if py is None:
        pytest.skip("no PyTorch: neither .venv-peers (make .venv-peers/.installed) nor torch in this venv")
    return py


def test_torch_twins_have_gen_jax_parameters_at_the_benchmark_size(tmp_path, peer_python):
    """Every gen_jax parameter (the cpu preset's shapes) maps onto the PyTorch twin, which has no other."""
    files, counts = [], {}
    for family, spec in FAMILIES.items():
        model = build_model(family)
        shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((2, *IMAGE_SHAPE), jnp.uint8))
        params = jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), shapes)
        counts[family] = sum(v.size for v in flatten(params).values())
        files.append(_check_file(tmp_path / f"{family}.npz", family, spec["kwargs"], params))
    got = _torch_check(peer_python, files)
    assert {f: r["params"] for f, r in got.items()} == counts
    assert counts == {"pixelcnn": 146607, "vae": 1836284, "glow": 104348, "diffusion": 1083332}


def test_torch_twins_compute_gen_jax_functions(tmp_path, peer_python):
    """Same parameters, same draws: the same log-probabilities and loss, to float precision."""
    x = _images(3, seed=2)
    files, expected = [], {}
    for family, kwargs in CHECK_KWARGS.items():
        model = build_model(family, kwargs)
        scale = 0.01 if family == "glow" else 0.05  # Glow: its couplings compound their scales
        params = _perturbed(
            jax.jit(model.init)(jax.random.key(0), jnp.asarray(_images(64, seed=3))), scale=scale
        )
        key, loss_key = jax.random.key(5), jax.random.key(6)
        noise, loss_noise = _draws(family, kwargs, x, key, loss_key)
        both = jax.jit(lambda p, x, k1, k2: (model.log_prob(p, x, k1), model.loss(p, x, k2)[0]))
        lp, loss = both(params, jnp.asarray(x), key, loss_key)
        expected[family] = (np.asarray(lp), float(loss))
        arrays = {"x": x}
        arrays.update({f"noise_{k}": np.asarray(v) for k, v in noise.items()})
        arrays.update({f"loss_noise_{k}": np.asarray(v) for k, v in loss_noise.items()})
        files.append(_check_file(tmp_path / f"{family}.npz", family, kwargs, params, arrays))
    got = _torch_check(peer_python, files)
    assert set(got) == set(CHECK_KWARGS)
    for family, (lp, loss) in expected.items():
        assert np.all(np.abs(lp) < 2e4), family  # a likelihood in the range of images (-log p / D ~ 6)
        np.testing.assert_allclose(got[family]["log_prob"], lp, rtol=1e-5, atol=0.01, err_msg=family)
        assert got[family]["loss"] == pytest.approx(loss, rel=1e-5, abs=0.01), family


def test_torch_child_trains_a_tiny_model(tmp_path, peer_python):
    images = _images(64, seed=4)
    path = export(
        tmp_path / "glow.npz", "glow", 4, images, images[:8], "random", kwargs=TINY["glow"], batch=8
    )
    cmd = [peer_python, str(TORCH_RUN), str(path), "0", "--mode", "eager", "--eval-reps", "1"]
    out = subprocess.run(cmd + ["--steps-per-dispatch", "2"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    row = json.loads(next(x for x in out.stdout.splitlines() if x.startswith("BENCH "))[6:])
    assert row["library"] == "torch_eager" and row["params"] == load_export(path)["meta"]["params"]
    assert row["train_steps_per_sec"] > 0 and row["eval_images_per_sec"] > 0
    # the same weights give the same test bits/dim up to the dequantization draws
    ours = run(str(path), 0, eval_reps=1, steps_per_dispatch=2)
    assert row["init_test_bpd"] == pytest.approx(ours["init_test_bpd"], abs=0.01)
