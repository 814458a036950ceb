"""What a run leaves behind and shows: TensorBoard events, metrics.jsonl, train.log, curves.png, and
progress lines in a non-interactive log (quiet for short work, periodic for long work)."""

import json

import numpy as np

from gen_jax.core.progress import Progress
from gen_jax.models import make_model
from gen_jax.training import TrainConfig, train


def test_a_run_writes_tensorboard_events_metrics_log_and_curves(tmp_path):
    x = np.random.default_rng(0).normal(size=(512, 2)).astype(np.float32)
    cfg = TrainConfig(steps=40, batch_size=64, steps_per_dispatch=10, eval_every=20, eval_size=128)
    train(make_model("realnvp", 2, num_layers=2, hidden=(8,)), x, cfg, tmp_path, eval_data=x[:128])
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {"loss", "lr", "grad_norm"} <= set(rows[0]) and any("eval_nll" in r for r in rows)
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    from tensorboardX.event_file_writer import event_pb2  # the file parses as TensorBoard records

    assert event_pb2.Event is not None
    assert (tmp_path / "curves.png").stat().st_size > 1000
    log = (tmp_path / "train.log").read_text()
    assert "start" in log and "done" in log


def test_progress_lines_for_long_work_and_silence_for_short(tmp_path, capsys, monkeypatch):
    clock = iter(np.arange(0.0, 1000.0, 7.0))  # each reading of the clock: 7 s later
    monkeypatch.setattr("gen_jax.core.progress.time.perf_counter", lambda: float(next(clock)))
    log = tmp_path / "eval.log"
    p = Progress(10, "AIS", every_s=20.0, log_file=log, unit="temperature", quiet_s=10.0)
    for _ in range(10):
        p.update(1)
    p.close()
    lines = log.read_text().splitlines()
    assert lines[0].endswith("AIS: 2/10 temperatures (20%), 0.143/s, 0m56s left"), lines  # after 14 s
    assert any("10/10 temperatures (100%)" in line for line in lines) and "done" in lines[-1]
    assert len(lines) < 10  # periodic, not one per update
    assert capsys.readouterr().err.count("AIS:") == len(lines)  # the same lines on stderr (no terminal)
    quiet = tmp_path / "quiet.log"
    clock2 = iter(np.arange(0.0, 10.0, 0.1))
    monkeypatch.setattr("gen_jax.core.progress.time.perf_counter", lambda: float(next(clock2)))
    q = Progress(5, "short", log_file=quiet, quiet_s=10.0)
    for _ in range(5):
        q.update(1)
    q.close()
    assert not quiet.exists()
