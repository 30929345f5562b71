"""One run end to end: results.json, the model cache, and bad input refused before training."""

from __future__ import annotations

import json

import pytest

from unlearnbench.errors import UnlearnbenchError
from unlearnbench.pipeline import prepare, run_experiment


def test_results_json_has_the_documented_schema(make_cfg, tmp_path) -> None:
    results = run_experiment(make_cfg("method=deepcut"), tmp_path)
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(results, default=str))
    assert on_disk["schema_version"] == 2
    assert on_disk["run"]["method"] == "deepcut" and on_disk["run"]["forget"]["strategy"] == "random"
    assert set(on_disk["sizes"]) == {"train", "forget", "retain", "val", "test"}
    for split in ("forget", "retain", "test"):
        assert 0.0 <= on_disk["metrics"][split]["accuracy"] <= 1.0 and "f1_macro" in on_disk["metrics"][split]
        assert 0.0 <= on_disk["metrics"][split]["f1_micro"] <= 1.0
    assert on_disk["timing"]["unlearn_seconds"] > 0 and on_disk["timing"]["total_seconds"] > 0
    assert on_disk["timing"]["eval_seconds"] > 0
    assert "torch" in on_disk["versions"]
    ref = on_disk["reference"]
    assert ref["model"] == "retrain" and not ref["is_self"]
    for split in ("forget", "test"):
        assert set(ref[split]) == {"f1_gap", "accuracy_gap", "agreement", "js_divergence", "n"}
        assert 0.0 <= ref[split]["agreement"] <= 1.0 and 0.0 <= ref[split]["js_divergence"] <= 1.0
    assert set(on_disk["mia"]["attacks"]) == {"loss", "entropy", "modified_entropy"}
    for attack in on_disk["mia"]["attacks"].values():
        assert 0.0 <= attack["auc"] <= 1.0 and attack["auc_gap"] == abs(attack["auc"] - attack["auc_retrain"])
    for when in ("before", "after"):
        assert set(on_disk["latent"][when]) == {"forget", "test"}
        assert -1.0 <= on_disk["latent"][when]["forget"]["silhouette"] <= 1.0
    cost = on_disk["cost"]
    assert cost["steps"] == on_disk["timing"]["steps"] and cost["peak_rss_mb"] > 0
    assert cost["process_peak_rss_mb"] >= cost["peak_rss_mb"]  # the whole job's peak, not one block's
    assert cost["ratio_to_retrain"]["seconds"] == cost["seconds"] / cost["retrain"]["seconds"]
    assert (tmp_path / "predictions.parquet").exists() and (tmp_path / "embeddings.npz").exists()
    forget_ids = json.loads((tmp_path / "forget_ids.json").read_text())
    assert len(forget_ids) == on_disk["sizes"]["forget"]


def test_original_is_trained_once_per_seed_and_retrain_once_per_split(make_cfg, tmp_path) -> None:
    cache = tmp_path / "cache"
    runs = [("original", 0), ("finetune", 0), ("retrain", 0), ("retrain", 0), ("deepcut", 1)]
    # eval.reference would train the retrained reference in the first run (tests/test_evaluation.py)
    results = [
        run_experiment(
            make_cfg(f"method={m}", f"seed={s}", "eval.reference=false", cache_dir=cache), tmp_path / f"{i}"
        )
        for i, (m, s) in enumerate(runs)
    ]
    assert [r["original"]["from_cache"] for r in results] == [False, True, True, True, False]
    assert [r["method_info"].get("retrain_from_cache") for r in results[2:4]] == [False, True]
    assert results[2]["timing"]["unlearn_seconds"] == results[3]["timing"]["unlearn_seconds"] > 0
    originals = list((cache / "models").glob("original-*[!k]"))
    assert len(originals) == 2  # seeds 0 and 1
    assert len(list((cache / "models").glob("retrain-*[!k]"))) == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["forget.ratio=1.5"], r"forget.ratio=1.5"),
        (["forget.ratio=-0.1"], r"forget.ratio=-0.1"),
        (["method.name=bogus"], r"method.name='bogus' .*deepcut"),
        (["method=deepcut", "method.tau=-1"], r"method.tau"),
        (["method=deepcut", "+method.gamm=1"], r"method.gamm"),
        (["method=finetune", "method.batch_size=0"], r"method.batch_size=0"),
        (["method=finetune", "method.lr=0"], r"method.lr=0"),
        (["forget=class", "forget.class_name=weather"], r"forget.class_name='weather'.*business"),
        (["data.num_labels=4"], r"data.num_labels=4"),
        (["model.source=nowhere"], r"model.source='nowhere'"),
        (["train.epochs=0"], r"train.epochs=0"),
    ],
)
def test_bad_input_is_refused_before_training(make_cfg, tmp_path, overrides, message) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(UnlearnbenchError, match=message):
        run_experiment(make_cfg(*overrides, cache_dir=cache), tmp_path / "run")
    assert not (cache / "models").exists()  # nothing was trained


def test_prepare_refuses_a_local_file_without_the_label_column(make_cfg, tmp_path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("text,stars\nhello,1\nbye,0\n")
    with pytest.raises(UnlearnbenchError, match=r"data.label_column='label'"):
        prepare(make_cfg("data=local", f"data.path={path}"))
