"""Configs as data: the override parser (typed, validated, every field reachable), run keys, and the
command line's one-line errors with exit status 2."""

import pytest

from experiments import toy2d
from experiments.configs.toy2d import PRESETS
from gen_jax.core import ConfigError
from gen_jax.evaluation.config import config_hash, resolve
from gen_jax.evaluation.runs import make_spec
from gen_jax.models.registry import model_options


def test_overrides_are_typed_and_reach_every_field():
    cfg = resolve(
        PRESETS["demo"],
        [
            "train.lr=3e-4",
            "models=[nsf]",
            "model_options.nsf.num_bins=16",
            "model_options.nsf.hidden=[32,32,32]",
            "train_overrides.nsf.steps=50",
            "eval.normalize.ais.num_chains=7",
            "files.train=x.npy",
        ],
    )
    assert cfg.train.lr == 3e-4 and cfg.models == ("nsf",) and cfg.eval.normalize.ais.num_chains == 7
    nsf = cfg.model_options["nsf"]
    assert nsf["num_bins"] == 16 and tuple(nsf["hidden"]) == (32, 32, 32)
    # every option of the model is in the resolved config, with its default where not set
    assert set(nsf) == set(model_options("nsf")) and nsf["tail_bound"] == 4.0
    assert cfg.train_overrides["nsf"] == {"steps": 50} and cfg.files.train == "x.npy"
    assert PRESETS["demo"].train.lr == 2e-3  # the preset itself is never mutated


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lrr=1", "Did you mean: 'lr'"),
        ("train.steps=abc", "could not be converted to Integer"),
        ("model_options.nsf.num_binz=3", "valid keys: num_layers, hidden, num_bins"),
        ("model_options.nope.x=1", "unknown model 'nope'"),
        ("models=[nsf,nope]", "unknown model 'nope'"),
        ("train_overrides.nsf.lr=fast", "could not be converted to Float"),
        ("model_options.nsf.standardize=sideways", "is not one of"),
        ("train.schedule=weird", "unknown schedule"),
        ("steps", "not key=value"),
    ],
)
def test_bad_overrides_are_one_line_errors(override, message):
    with pytest.raises(ConfigError, match=message) as e:
        resolve(PRESETS["demo"], [override])
    assert "\n" not in str(e.value)


def test_run_key_follows_the_config():
    cfg = resolve(PRESETS["demo"], [])
    a = make_spec("nsf", (2,), cfg.model_options, cfg.train, cfg.train_overrides, {"dataset": "moons"}, 0)
    cfg2 = resolve(PRESETS["demo"], ["model_options.nsf.num_bins=9"])
    b = make_spec("nsf", (2,), cfg2.model_options, cfg2.train, cfg2.train_overrides, {"dataset": "moons"}, 0)
    c = make_spec("nsf", (2,), cfg.model_options, cfg.train, cfg.train_overrides, {"dataset": "moons"}, 0)
    assert a.key == c.key != b.key
    # what cannot change the trained parameters is not in the key; what can is
    shown = resolve(
        PRESETS["demo"], ["train.progress=false", "train.tensorboard=false", "train.max_to_keep=5"]
    )
    d = make_spec(
        "nsf", (2,), shown.model_options, shown.train, shown.train_overrides, {"dataset": "moons"}, 0
    )
    lr = resolve(PRESETS["demo"], ["train.lr=0.000123"])
    e = make_spec("nsf", (2,), lr.model_options, lr.train, lr.train_overrides, {"dataset": "moons"}, 0)
    assert d.key == a.key != e.key and config_hash(d) != config_hash(a)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train.lrr=1"], "error: train.lrr"),
        (["--models", "nsf,nope"], "unknown model 'nope'"),
        (["--preset", "nope"], "unknown preset 'nope'"),
        (["--datasets", "/no/such/file.npy"], "does not exist"),
        (["--bogus"], "unrecognized arguments"),
        (["--steps", "many"], "could not be converted"),
        (["datasets=[]"], "no data: give your files"),  # e.g. --preset tabular without --train
    ],
)
def test_cli_errors_are_one_line_and_exit_2(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        toy2d.main(["--preset", "smoke", f"out={tmp_path}", *argv] if argv[0] != "--preset" else argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("error:"), err


def test_cli_shows_the_resolved_config(capsys):
    toy2d.main(["--preset", "smoke", "--show", "model_options.nsf.num_bins=5"])
    out = capsys.readouterr().out
    assert "num_bins: 5" in out and "tail_bound: 4.0" in out
