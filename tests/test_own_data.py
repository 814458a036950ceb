"""Your own data through the library: docs/own-data.md's example as written, conditional densities on a
Gaussian whose log p(x | c) is known, save/load without data, early stopping keeping the best."""

import dataclasses
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gen_jax

DOC = Path(__file__).resolve().parents[1] / "docs" / "own-data.md"


def test_the_docs_example_runs_as_written(tmp_path, monkeypatch):
    code = re.search(r"## In Python\n\n```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    assert 10 <= len(code.strip().splitlines()) <= 16
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(code.replace("steps=3000", "steps=150"), namespace)
    assert (tmp_path / "my_nsf" / "model.json").exists() and namespace["samples"].shape == (1000, 4)
    # loaded without data, the model gives the fitted model's numbers
    lp = namespace["model"].log_prob(namespace["params"], jnp.asarray(namespace["test"][:5]))
    assert np.all(np.isfinite(np.asarray(lp)))


def test_make_model_takes_an_int_and_save_load_round_trips(tmp_path):
    x = np.random.default_rng(0).normal(size=(500, 3)).astype(np.float32) * 40 + 7
    model = gen_jax.make_model("maf", 3, num_layers=2, hidden=(8,))
    fit = gen_jax.fit(model, x, steps=40, validation=0.2, eval_every=20, progress=False)
    gen_jax.save(tmp_path / "m", model, fit.params)
    again, params = gen_jax.load(tmp_path / "m")
    np.testing.assert_array_equal(again.log_prob(params, x[:7]), model.log_prob(fit.params, x[:7]))
    ev = gen_jax.evaluate(model, fit.params, x)
    assert (
        ev["kind"] == "exact"
        and ev["nll"] > 0
        and ev["bits_per_dim"] == pytest.approx(ev["nll"] / (3 * np.log(2)))
    )


def test_early_stopping_keeps_the_best_parameters():
    """A learning rate that makes the validation NLL worsen after it improves: training stops after
    `patience` evaluations without improvement and returns the best evaluation's parameters."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 2)).astype(np.float32)
    model = gen_jax.make_model("realnvp", 2, num_layers=2, hidden=(64, 64))
    fit = gen_jax.fit(
        model,
        x,
        steps=3000,
        lr=3e-2,
        validation=0.5,
        patience=2,
        eval_every=25,
        progress=False,
        schedule="constant",
        warmup_steps=0,
    )
    evals = [r for r in fit.history if "eval_nll" in r]
    assert fit.best_step is not None and evals[-1]["step"] < 3000  # stopped early
    best = min(evals, key=lambda r: r["eval_nll"])
    assert fit.best_step == best["step"] and fit.best_validation_nll == pytest.approx(best["eval_nll"])


def test_early_stopping_waits_for_the_second_half_of_a_cosine_schedule():
    """Under the cosine schedule the validation NLL plateaus while the rate is high: the evaluations of
    the first half keep the best parameters but do not count towards the patience."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 2)).astype(np.float32)
    model = gen_jax.make_model("realnvp", 2, num_layers=2, hidden=(64, 64))
    kw = dict(steps=800, lr=3e-2, validation=0.5, patience=2, eval_every=25, progress=False, warmup_steps=0)
    constant = gen_jax.fit(model, x, schedule="constant", **kw)
    assert [r for r in constant.history if "eval_nll" in r][-1]["step"] < 400  # the same run stops early
    fit = gen_jax.fit(model, x, **kw)
    evals = [r for r in fit.history if "eval_nll" in r]
    assert evals[-1]["step"] >= 400
    best = min(evals, key=lambda r: r["eval_nll"])
    assert fit.best_step == best["step"] and fit.best_validation_nll == pytest.approx(best["eval_nll"])


def _conditional_gaussian(n, seed):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(n, 1)).astype(np.float32)
    a, b, chol = np.array([[2.0], [-1.0]]), np.array([1.0, 3.0]), np.array([[0.5, 0.0], [0.3, 0.2]])
    x = (c @ a.T + b + rng.normal(size=(n, 2)) @ chol.T).astype(np.float32)
    cov = chol @ chol.T
    d = x - (c @ a.T + b)
    true_lp = -0.5 * np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d) - 0.5 * np.log(
        np.linalg.det(2 * np.pi * cov)
    )
    return x, c, true_lp


@pytest.mark.parametrize("name", ["maf", "realnvp", "nsf"])
def test_conditional_flow_learns_a_known_conditional_density(name):
    """x | c ~ N(A c + b, S): the conditional flows' test NLL of log p(x | c) approaches the true one,
    and their samples given c have the right conditional mean."""
    x, c, _ = _conditional_gaussian(8000, 0)
    xt, ct, true_lp = _conditional_gaussian(1000, 1)
    model = gen_jax.make_model(name, 2, context_dim=1, num_layers=3, hidden=(32, 32))
    fit = gen_jax.fit(model, x, context=c, validation=None, steps=1200, lr=3e-3, progress=False)
    ev = gen_jax.evaluate(model, fit.params, xt, context=ct)
    assert ev["nll"] - float(-true_lp.mean()) < 0.06, (ev, -true_lp.mean())
    cond = jnp.full((2000, 1), 1.5)
    samples = np.asarray(model.sample(fit.params, jax.random.key(3), 2000, context=cond))
    np.testing.assert_allclose(samples.mean(0), [4.0, 1.5], atol=0.1)
    with pytest.raises(ValueError, match="context"):
        model.log_prob(fit.params, jnp.asarray(xt[:3]))


def test_own_data_files_hold_disjoint_train_validation_and_test_draws(tmp_path):
    """`make own-data` writes a validation file beside train and test (early stopping selects on it,
    never on the test file): three independent draws of the dataset, rescaled alike."""
    from experiments.configs.own_data import PRESETS
    from experiments.own_data import write_files
    from gen_jax.data.synthetic import SYNTHETIC

    cfg = dataclasses.replace(PRESETS["smoke"], out=str(tmp_path), n_entropy=500)
    files, entropy = write_files(cfg, "shifted2d", 100.0, -500.0)
    parts = {s: np.load(getattr(files, s)) for s in ("train", "validation", "test")}
    assert {s: len(x) for s, x in parts.items()} == {
        "train": cfg.n_train,
        "validation": cfg.n_validation,
        "test": cfg.n_test,
    }
    rows = {s: {tuple(r) for r in x.tolist()} for s, x in parts.items()}
    assert not (rows["train"] & rows["validation"]) and not (rows["validation"] & rows["test"])
    assert np.mean(parts["validation"][:, 1]) > 500  # x2 = 12 + 2 x1^2 + noise, times 100, minus 500
    h, _ = SYNTHETIC["shifted2d"].entropy(500)
    assert entropy == pytest.approx(h + 2 * np.log(100.0))  # H(a x + b) = H(x) + D log|a|


def test_true_test_nll_follows_the_rescaling_and_scatters_around_the_entropy(tmp_path):
    """The table's "- true NLL" reference: the true density's NLL of the test points in the file's own
    units. The same draws rescaled by a x + b differ by exactly D log|a|; unrescaled, it is the
    entropy up to the test sample's noise; a wrong Jacobian, a missing shift or the wrong density
    would fail one of the two."""
    from experiments.configs.own_data import PRESETS
    from experiments.own_data import true_test_nll, write_files

    cfg = dataclasses.replace(PRESETS["smoke"], out=str(tmp_path), n_test=4000, n_entropy=20000)
    nll = {}
    for a, b in ((1.0, 0.0), (100.0, -500.0), (0.01, 3.0)):
        files, entropy = write_files(cfg, "mix6d", a, b)
        nll[a] = true_test_nll("mix6d", np.load(files.test), a, b)
        assert abs(nll[a] - entropy) < 0.15, (a, nll[a], entropy)  # sd of -log p about 2 nats / 63
    assert nll[100.0] - nll[1.0] == pytest.approx(6 * np.log(100.0), abs=1e-3)
    assert nll[0.01] - nll[1.0] == pytest.approx(6 * np.log(0.01), abs=1e-3)
