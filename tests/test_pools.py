"""Model pools and forget quality in a run: members trained once and shared, the method's pool and
the retrained pool compared, the power of a forget design (the original's pool against the retrained
one) and its ceiling (a second retrained pool)."""

from __future__ import annotations

import numpy as np
import pytest

from unlearnbench.errors import ConfigError
from unlearnbench.methods import METHODS
from unlearnbench.pipeline import prepare, run_experiment
from unlearnbench.pools import member_seeds, varies

POOL = [
    "eval.pool.size=3",
    "data.max_samples=120",
    "eval.latent=false",
    "eval.embeddings_per_split=0",
    "train.epochs=10",
]


def test_members_differ_in_the_seed_their_method_has() -> None:
    assert varies(METHODS["deepcut"]) == "unlearn_seed" and list(member_seeds(METHODS["deepcut"], 3)) == [
        0,
        1,
        2,
    ]
    for name in (
        "original",
        "retrain",
        "sisa",
    ):  # no unlearning seed: training seeds, disjoint from the retrained pool
        assert varies(METHODS[name]) == "train_seed" and list(member_seeds(METHODS[name], 3)) == [3, 4, 5]


def test_a_pooled_run_reports_forget_quality_and_reuses_every_member(make_cfg, tmp_path, caplog) -> None:
    cache = tmp_path / "cache"
    cfg = make_cfg("method=gradient_ascent", "method.max_steps=2", *POOL, cache_dir=cache)
    first = run_experiment(cfg, tmp_path / "first")
    fq = first["forget_quality"]
    assert fq["n_models"] == 3 and fq["pool"] == "unlearn_seed" and 0.0 <= fq["score"] <= 1.0
    assert fq["n_examples"] == first["sizes"]["forget"] and fq["ulira_auc"] is not None
    per_example = np.load(tmp_path / "first" / "forget_quality.npz")
    assert per_example["unlearned"].shape == per_example["retrained"].shape == (3, first["sizes"]["forget"])
    assert np.mean(per_example["points"]) == pytest.approx(fq["score"])
    pools = list((cache / "pools").iterdir())
    assert len(pools) == 1 and len(list(pools[0].glob("member-*.json"))) == 3
    retrained = list((cache / "models").glob("retrain-*/eval/member-*.json"))
    assert len(retrained) == 3  # the retrained pool: one stored model per training seed, with its outputs

    caplog.clear()
    with caplog.at_level("INFO", logger="unlearnbench.pools"):
        again = run_experiment(
            make_cfg("method=gradient_ascent", "method.max_steps=2", *POOL, cache_dir=cache),
            tmp_path / "again",
        )
    assert not [r for r in caplog.records if "member" in r.getMessage()]  # nothing trained or unlearned again
    assert again["forget_quality"]["score"] == fq["score"]


def test_the_power_of_a_design_is_the_originals_pool_against_the_retrained_one(make_cfg, tmp_path) -> None:
    """F(original pool vs retrained pool) is the design's power; F(a second retrained pool vs the
    first) its ceiling: on a label swap the original, which learned the swapped labels, is far from
    retraining, and two retrained pools are not."""
    cache = tmp_path / "cache"
    swap = ["forget=label_swap", "forget.classes=[business,tech]", "forget.ratio=0.3", *POOL]
    original = run_experiment(make_cfg("method=original", *swap, cache_dir=cache), tmp_path / "original")
    retrain = run_experiment(make_cfg("method=retrain", *swap, cache_dir=cache), tmp_path / "retrain")
    assert original["forget_quality"]["pool"] == retrain["forget_quality"]["pool"] == "train_seed"
    assert original["forget_quality"]["score"] < retrain["forget_quality"]["score"]


def test_member_jobs_add_themselves_without_gathering(make_cfg, tmp_path) -> None:
    cache = tmp_path / "cache"
    member = make_cfg(
        "method=gradient_ascent",
        "method.max_steps=2",
        "unlearn_seed=1",
        *POOL,
        "eval.pool.gather=false",
        cache_dir=cache,
    )
    results = run_experiment(member, tmp_path / "member")
    assert results["forget_quality"] is None and results["run"]["unlearn_seed"] == 1
    assert [p.name.split("-")[1] for p in (cache / "pools").glob("*/member-*.json")] == ["1"]
    with pytest.raises(ConfigError, match=r"eval\.pool\.size=1"):
        prepare(make_cfg("eval.pool.size=1"))
