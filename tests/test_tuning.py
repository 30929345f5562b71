"""Hyper-parameter searches (hparams_search=<method>, docs/tuning.md): every search space composes
into configs its method accepts, and a 2-trial Optuna search through the real CLI returns finite
objectives whose best parameters one override (tuned=<set>) then applies."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides
from omegaconf import OmegaConf

from tests.test_cli import unlearnbench_here
from unlearnbench.cli.callbacks import search_summary
from unlearnbench.cli.tuned import method_values, read_search, save_tuned
from unlearnbench.config import CONF_DIR, compose_with_hydra
from unlearnbench.errors import UnlearnbenchError
from unlearnbench.methods import get_method
from unlearnbench.objective import value
from unlearnbench.results import read_results

SEARCHES = sorted(p.stem for p in (Path(CONF_DIR) / "hparams_search").glob("*.yaml"))


def test_every_method_with_parameters_has_a_search() -> None:
    # sisa: its knobs (shards, slices) trade cost for utility and the objectives have no cost term,
    # so a search would pick one shard (retraining); original and retrain have nothing to tune
    methods = {p.stem for p in (Path(CONF_DIR) / "method").glob("*.yaml")}
    assert set(SEARCHES) == methods - {"original", "retrain", "sisa"}


@pytest.mark.parametrize("search", SEARCHES)
def test_search_space_composes_into_configs_the_method_accepts(search: str) -> None:
    cfg = compose_with_hydra([f"hparams_search={search}", "experiment=smoke"])
    sweeper = cfg.hydra.sweeper
    # the shared budget, direction and seeds, whatever the experiment swept
    assert (sweeper.n_trials, sweeper.direction, sweeper.sampler.seed, cfg.seed) == (30, "maximize", 100, 100)
    assert cfg.optimized_metric == "oracle" and cfg.method.name == search
    spaces, fixed = create_params_from_overrides([f"{k}={v}" for k, v in sweeper.params.items()])
    assert not fixed and spaces and all(k.startswith("method.") for k in spaces)
    if "lr" in cfg.method:  # a method that trains (ssd does not: its space is its own two knobs)
        assert spaces["method.lr"].__class__.__name__ == "LogUniformDistribution"
        assert spaces["method.epochs"].__class__.__name__ == "IntUniformDistribution"  # not a float
    else:
        assert {"method.lr", "method.epochs"}.isdisjoint(spaces)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(2):  # two random points of the space, each one a config the method parses
        trial = study.ask()
        overrides = [f"{k}={trial._suggest(k, d)}" for k, d in spaces.items()]
        job = compose_with_hydra([f"hparams_search={search}", "experiment=smoke", *overrides])
        get_method(search).parse_params(job.method)


def test_two_trial_search_returns_finite_objectives_and_its_best_applies(
    tmp_path, monkeypatch, capsys
) -> None:
    sweep = tmp_path / "search"
    status = unlearnbench_here(
        monkeypatch,
        "-m",
        "hparams_search=deepcut",
        "hydra.sweeper.n_trials=2",
        "train.epochs=10",  # the original and the retrained reference: trained enough to differ, quickly
        f"hydra.sweep.dir={sweep}",
        cache=tmp_path / "cache",
    )
    printed = capsys.readouterr().out
    assert status == 0
    trials = [read_results(p.parent) for p in sweep.glob("*/results.json")]
    values = [value(r, "oracle") for r in trials if r is not None]
    assert len(values) == 2 and all(math.isfinite(v) for v in values)
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    assert best.best_value == pytest.approx(max(values))
    assert "best parameters (objective" in printed and f"{sweep}/optimization_results.yaml" in printed

    search = read_search(sweep)
    assert (search.method, search.n_trials, search.seed) == ("deepcut", 2, 100)
    conf = tmp_path / "conf"
    save_tuned(sweep, "t1", conf)
    searchpath = f"hydra.searchpath=[file://{conf}]"
    tuned = compose_with_hydra([searchpath, "tuned=t1", "experiment=smoke", "method=deepcut"])
    for key, tuned_value in best.best_params.items():
        assert OmegaConf.select(tuned, key) == tuned_value
    untouched = compose_with_hydra([searchpath, "tuned=t1", "experiment=smoke", "method=scrub"])
    assert untouched.method.lr == compose_with_hydra(["experiment=smoke", "method=scrub"]).method.lr


def fake_search(sweep: Path, best_params: dict) -> Path:
    """A search dir as the Optuna sweeper leaves it: its results and one trial's config."""
    (sweep / "0" / ".hydra").mkdir(parents=True)
    OmegaConf.save(
        {"method": {"name": "scrub"}, "seed": 100, "optimized_metric": "no_oracle", "experiment_name": "x"},
        sweep / "0" / ".hydra" / "config.yaml",
    )
    OmegaConf.save(
        {"name": "optuna", "best_params": best_params, "best_value": 0.5}, sweep / "optimization_results.yaml"
    )
    return sweep


def test_saving_a_tuned_set_keeps_method_keys_only(tmp_path: Path) -> None:
    assert method_values({"method.lr": 1e-5, "method.stop.every_n_steps": 3}) == {
        "lr": 1e-5,
        "stop": {"every_n_steps": 3},
    }
    sweep = fake_search(tmp_path / "s", {"method.gamma": 0.3, "method.temperature": 2.0})
    assert "method.gamma=0.3 method.temperature=2.0" in str(search_summary(sweep, "x"))
    params, selector = save_tuned(sweep, "mine", tmp_path / "conf")
    assert params == tmp_path / "conf" / "tuned_params" / "mine" / "scrub.yaml"
    assert OmegaConf.load(params) == {"gamma": 0.3, "temperature": 2.0}
    assert "no_oracle" in params.read_text() and "methods: scrub" in selector.read_text()
    with pytest.raises(UnlearnbenchError, match="not a method"):
        save_tuned(fake_search(tmp_path / "t", {"train.lr": 1e-4}), "mine", tmp_path / "conf")
    with pytest.raises(UnlearnbenchError, match="not 'none'"):
        save_tuned(sweep, "none", tmp_path / "conf")
    assert search_summary(tmp_path, "x") is None  # not a search
