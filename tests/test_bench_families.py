"""The family throughput table: variants per family, flops shared across variants, speed-ups, the
fraction of the matmul probe."""

import json

import pytest

from experiments import bench_families


def test_variants_cover_what_each_family_can_change():
    common = ["default", "dispatch1", "other_emitters"]
    assert bench_families.variants("flow/nsf") == common + ["looped", "unscanned", "bf16"]
    assert bench_families.variants("vae") == common + ["lax_conv", "bf16"]
    assert bench_families.variants("gan (2D)") == common + ["bf16"]
    assert bench_families.variants("diffusion (2D)") == common + ["bf16"]  # conv_impl: no vector model
    assert bench_families.variants("diffusion (U-Net)") == common + ["lax_conv", "bf16"]
    specs = bench_families._specs()  # every image model of the cpu preset, at its training batch
    assert {specs[label][0] for label in bench_families.IMAGE_FAMILIES.values()} == set(
        bench_families.IMAGE_FAMILIES
    )


def test_table_uses_the_unscanned_flop_count_and_ratios(tmp_path):
    row = dict(model="nsf", batch_size=512, compile_s=1.0, examples_per_sec=0.0, gflops=0.0, device="cpu")
    rows = [
        dict(row, family="flow/nsf", variant="default", steps_per_sec=200.0, gflop_per_step=0.02),
        dict(row, family="flow/nsf", variant="unscanned", steps_per_sec=100.0, gflop_per_step=0.08),
    ]
    bench_families.write(tmp_path, rows, runs=1, steps=10, probe=64.0)
    saved = {r["variant"]: r for r in json.loads((tmp_path / "families.json").read_text())}
    assert saved["default"]["gflop_per_step"] == saved["unscanned"]["gflop_per_step"] == 0.08
    assert saved["default"]["gflops"] == 0.08 * 200.0
    assert saved["unscanned"]["speedup"] == 2.0 and saved["default"]["speedup"] == 1.0
    assert saved["default"]["probe_gflops"] == 64.0
    assert saved["default"]["probe_fraction"] == pytest.approx(0.08 * 200.0 / 64.0)
    assert saved["unscanned"]["probe_fraction"] == pytest.approx(0.08 * 100.0 / 64.0)
    md = (tmp_path / "families.md").read_text()
    assert "counts a scanned loop's body once" in md
    assert "fraction of the matmul probe" in md and "| 0.250 |" in md and "64.0 GFLOP/s" in md


def test_matmul_probe_measures_a_rate():
    from experiments.benchlib import matmul_gflops

    probe = matmul_gflops(n=128, calls=3)
    assert probe["n"] == 128 and probe["calls"] == 3 and probe["seconds"] > 0
    assert probe["gflops"] == pytest.approx(2 * 128**3 / probe["seconds"] / 1e9)
