"""The power document: a design separates the original from retraining only where the original's
pool scores significantly below the ceiling (two retrained pools); methods ranked by forget quality."""

from __future__ import annotations

from tests.test_report import fake_run
from unlearnbench.report.power import render_power


def fq(score: float) -> dict:
    return {"forget_quality": {"score": score, "final_score": score, "ulira_auc": 0.5, "n_models": 8}}


def test_a_design_separates_when_the_originals_pool_is_significantly_below_the_ceiling(tmp_path) -> None:
    scores = {
        "original": [0.05, 0.07, 0.06],
        "retrain": [0.30, 0.33, 0.31],
        "finetune": [0.10, 0.12, 0.11],
        "deepcut": [0.25, 0.27, 0.26],
    }
    for method, values in scores.items():
        for seed, value in enumerate(values):
            fake_run(tmp_path / "runs", method, seed, 0.9, 1.0, sections=fq(value))
    text, facts = render_power([tmp_path / "runs"], "# Power")
    verdict = facts[("bbc", "m", "random-0.05")]
    assert verdict["separates"] and verdict["tested"]
    assert verdict["ranking"] == ["deepcut", "finetune"] and verdict["best_significant"]
    assert "random-0.05** separates the original from retraining" in text and "N = 8 models" in text
    assert "| deepcut  |       3 | 0.260 ± " in text


def test_overlapping_pools_do_not_separate_and_one_seed_is_not_tested(tmp_path) -> None:
    for method, values in {"original": [0.2, 0.35], "retrain": [0.3, 0.25]}.items():
        for seed, value in enumerate(values):
            fake_run(tmp_path / "two", method, seed, 0.9, 1.0, sections=fq(value))
    assert not render_power([tmp_path / "two"], "# Power")[1][("bbc", "m", "random-0.05")]["separates"]
    for method, value in {"original": 0.1, "retrain": 0.3}.items():
        fake_run(tmp_path / "one", method, 0, 0.9, 1.0, sections=fq(value))
    text, facts = render_power([tmp_path / "one"], "# Power")
    assert not facts[("bbc", "m", "random-0.05")]["tested"] and "one seed: means only, no test" in text


def test_methods_that_tie_on_forget_quality_name_no_closest(tmp_path) -> None:
    scores = {"original": 0.0, "retrain": 0.2, "finetune": 0.0, "deepcut": 0.0, "gradient_ascent": 0.0}
    for method, value in scores.items():
        fake_run(tmp_path, method, 0, 0.9, 1.0, sections=fq(value))
    text, facts = render_power([tmp_path], "# Power")
    assert len(facts[("bbc", "m", "random-0.05")]["tied"]) == 3
    assert "closest to retraining: none, a tie of" in text
