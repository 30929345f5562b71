"""Real-model checks (all-MiniLM-L6-v2 on BBC News): `make test-slow`, minutes rather than seconds."""

from __future__ import annotations

import pytest

from unlearnbench.pipeline import run_experiment

pytestmark = pytest.mark.slow

REAL = [
    "model=minilm",
    "data.max_samples=500",
    "data.max_length=64",
    "train.epochs=2",
    "train.lr=1e-4",
    "train.batch_size=16",
    "num_threads=1",  # leaves the other core to whatever else runs
]


def test_minilm_learns_bbc_and_deepcut_keeps_its_utility(make_cfg, tmp_path) -> None:
    cache = tmp_path / "cache"
    original = run_experiment(make_cfg(*REAL, "method=original", cache_dir=cache), tmp_path / "original")
    assert original["metrics"]["test"]["accuracy"] >= 0.9  # the pretrained encoder makes BBC easy
    deepcut = run_experiment(make_cfg(*REAL, "method=deepcut", cache_dir=cache), tmp_path / "deepcut")
    assert deepcut["original"]["from_cache"]
    test_drop = original["metrics"]["test"]["f1_macro"] - deepcut["metrics"]["test"]["f1_macro"]
    assert test_drop <= 0.03
    assert deepcut["cost"]["ratio_to_retrain"]["seconds"] < 1.0
    assert deepcut["method_info"]["skipped_anchors"] == 0
