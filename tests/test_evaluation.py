"""Evaluation: metrics on small inputs with known values, and a run's evaluation end to end
(the retrained model against itself, the shared reference, files that recompute the metrics)."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import f1_score, roc_auc_score

from tests.conftest import compose_cfg
from unlearnbench.errors import ConfigError
from unlearnbench.evaluation import (
    EvalOptions,
    compare_predictions,
    js_divergence,
    latent_metrics,
    mia_aucs,
    modified_entropy,
)
from unlearnbench.evaluation.cost import cost_section
from unlearnbench.methods.deepcut import pool
from unlearnbench.pipeline import prepare, run_experiment
from unlearnbench.runtime import RunContext
from unlearnbench.runtime.memory import PeakMemory, process_peak_rss_mb
from unlearnbench.runtime.outputs import predict
from unlearnbench.tasks import Predictions, get_task
from unlearnbench.tasks.sequence import classification_metrics

SEQUENCE = get_task("sequence_classification")


def preds_from_probs(probs, labels, indices=None) -> Predictions:
    probs = np.asarray(probs, dtype=np.float64)
    indices = np.arange(len(probs)) if indices is None else np.asarray(indices)
    return Predictions(np.log(probs).astype(np.float32), np.asarray(labels), indices)


def binary(p_label: list[float], start: int = 0) -> Predictions:
    """Two classes, true label 1 with probability p: loss = -log p."""
    p = np.asarray(p_label)
    return preds_from_probs(np.c_[1 - p, p], np.ones(len(p), dtype=int), np.arange(start, start + len(p)))


# ---------------------------------------------------------------------- classification
def test_perfect_and_constant_predictors() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    assert classification_metrics(y, y) == {
        "accuracy": 1.0,
        "f1": 1.0,
        "f1_macro": 1.0,
        "f1_micro": 1.0,
        "n": 6,
    }
    constant = classification_metrics(y, np.zeros(6, dtype=int))
    # class 0: precision 2/6, recall 1 -> F1 1/2; classes 1, 2: F1 0
    assert constant["accuracy"] == pytest.approx(1 / 3)
    assert constant["f1_macro"] == pytest.approx(1 / 6)
    assert constant["f1_micro"] == pytest.approx(1 / 3)
    empty = classification_metrics(np.array([]), np.array([]))
    assert empty["n"] == 0 and math.isnan(empty["f1_macro"])


# ---------------------------------------------------------------------- reference comparison
def test_a_model_against_itself_and_against_its_opposite() -> None:
    a = preds_from_probs([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], [0, 1, 1], [5, 7, 9])
    same = compare_predictions(SEQUENCE, a, a)
    assert same == {"f1_gap": 0.0, "accuracy_gap": 0.0, "agreement": 1.0, "js_divergence": 0.0, "n": 3}
    # matched by dataset index, not by position
    shuffled = a.take([9, 5, 7])
    assert compare_predictions(SEQUENCE, shuffled, a)["agreement"] == 1.0
    assert compare_predictions(SEQUENCE, shuffled, a)["js_divergence"] == 0.0

    one_hot = preds_from_probs(np.clip([[1.0, 0.0], [0.0, 1.0]], 1e-30, 1), [0, 1])
    flipped = preds_from_probs(np.clip([[0.0, 1.0], [1.0, 0.0]], 1e-30, 1), [0, 1])
    cmp = compare_predictions(SEQUENCE, one_hot, flipped)
    assert cmp["agreement"] == 0.0 and cmp["f1_gap"] == 1.0
    assert cmp["js_divergence"] == pytest.approx(1.0, abs=1e-6)  # disjoint supports: 1 bit


def test_js_divergence_known_value() -> None:
    p, q = np.array([[0.5, 0.5]]), np.array([[1.0, 0.0]])
    # m = (3/4, 1/4): JS = 1/2 KL(p||m) + 1/2 KL(q||m)
    kl = lambda a, m: sum(x * math.log2(x / y) for x, y in zip(a, m, strict=True) if x > 0)  # noqa: E731
    expected = 0.5 * kl([0.5, 0.5], [0.75, 0.25]) + 0.5 * kl([1.0, 0.0], [0.75, 0.25])
    assert js_divergence(p, q)[0] == pytest.approx(expected)


# ---------------------------------------------------------------------- membership inference
def test_mia_auc_known_values() -> None:
    members = binary([0.9, 0.8, 0.7])  # losses -log p: lower for members ...
    nonmembers = binary([0.75, 0.6, 0.55], start=3)  # ... except 0.7 < 0.75: 8 of 9 pairs ordered
    aucs = mia_aucs(SEQUENCE, members, nonmembers)
    # With two classes and p > 1/2, entropy and Mentr are monotone in p as the loss is.
    assert aucs == pytest.approx({"loss": 8 / 9, "entropy": 8 / 9, "modified_entropy": 8 / 9})
    assert mia_aucs(SEQUENCE, binary([0.99, 0.98]), binary([0.6, 0.55], 2))["loss"] == 1.0
    assert mia_aucs(SEQUENCE, binary([0.6, 0.55]), binary([0.99, 0.98], 2))["loss"] == 0.0
    assert math.isnan(mia_aucs(SEQUENCE, binary([]), nonmembers)["loss"])


def test_modified_entropy_known_value() -> None:
    p = np.array([[0.7, 0.2, 0.1]])
    expected = -(0.3 * math.log(0.7)) - 0.2 * math.log(0.8) - 0.1 * math.log(0.9)
    assert modified_entropy(p, np.array([0]))[0] == pytest.approx(expected)
    # confident and right: near 0; confident and wrong: large
    assert modified_entropy(np.array([[1 - 1e-9, 1e-9]]), np.array([0]))[0] < 1e-6
    assert modified_entropy(np.array([[1 - 1e-9, 1e-9]]), np.array([1]))[0] > 20


# ---------------------------------------------------------------------- latent space
def test_latent_metrics_on_two_clean_clusters() -> None:
    e1, e2 = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    retain = np.vstack([e1 * s for s in (1, 2, 3)] + [e2 * s for s in (1, 2, 3)])  # norm does not matter
    retain_y = np.array([0, 0, 0, 1, 1, 1])
    inside = latent_metrics(np.array([e1 * 5]), np.array([0]), retain, retain_y)
    assert inside == pytest.approx({"nearest_own": 1.0, "margin": 1.0, "silhouette": 1.0, "n": 1, "n_own": 1})
    moved = latent_metrics(np.array([e2]), np.array([0]), retain, retain_y)
    assert moved == pytest.approx(
        {"nearest_own": 0.0, "margin": -1.0, "silhouette": -1.0, "n": 1, "n_own": 1}
    )
    # a whole forgotten class has no retain centroid: no nearest-own / margin, but a silhouette
    e3 = np.array([0.0, 0.0, 1.0])
    gone = latent_metrics(np.array([e3, e3]), np.array([2, 2]), retain, retain_y)
    assert gone["n_own"] == 0 and math.isnan(gone["nearest_own"]) and math.isnan(gone["margin"])
    assert gone["silhouette"] == pytest.approx(1.0)  # together, and apart from both retain classes
    assert math.isnan(latent_metrics(np.zeros((0, 3)), np.array([]), retain, retain_y)["margin"])


# ---------------------------------------------------------------------- cost, options, files
def rss_now_mb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024


def test_peak_memory_and_cost_ratios() -> None:
    with PeakMemory() as outer, PeakMemory() as inner:
        start = rss_now_mb() if sys.platform == "linux" else 0.0
        block = np.ones(80 * 2**20 // 8)  # 80 MiB, touched
        del block
    assert inner.rss_mb >= start + 75 and outer.rss_mb >= inner.rss_mb
    assert outer.as_dict()["memory_scope"] in ("block", "process")
    own = {"seconds": 2.0, "steps": 10, "samples": 40, "peak_rss_mb": 100.0}
    cost = cost_section(own, {"seconds": 8.0, "steps": 100, "samples": 0, "peak_rss_mb": None})
    assert cost["ratio_to_retrain"] == {"seconds": 0.25, "steps": 0.1, "samples": None, "peak_rss_mb": None}
    assert cost_section(own, None)["ratio_to_retrain"] is None


def test_eval_options() -> None:
    opts = EvalOptions.from_cfg({"splits": ["val"], "latent": False})
    assert opts.evaluated_splits() == ["forget", "val", "test"]
    assert EvalOptions.from_cfg(
        {"splits": ["val"], "reference": False, "before": False, "mia": False, "latent": False}
    ).evaluated_splits() == ["val"]
    assert EvalOptions.from_cfg({"splits": ["test"]}).evaluated_splits() == ["forget", "retain", "test"]
    for bad in (
        {"splits": ["dev"]},
        {"splits": []},
        {"splits": ["test"], "mia": "yes"},
        {"splits": ["test"], "mi": 1},
    ):
        with pytest.raises(ConfigError):
            EvalOptions.from_cfg(bad)


def test_predictions_round_trip(tmp_path) -> None:
    a = Predictions(
        np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32),
        np.array([0, 2, 1, 0]),
        np.array([8, 3, 5, 1]),
        np.arange(8, dtype=np.float32).reshape(4, 2),
    )
    s = a.sorted()
    assert s.indices.tolist() == [1, 3, 5, 8] and s.embeddings[0].tolist() == [6.0, 7.0]
    a.save(tmp_path / "p.npz")
    b = Predictions.load(tmp_path / "p.npz")
    assert np.array_equal(a.logits, b.logits) and np.array_equal(a.embeddings, b.embeddings)
    assert np.allclose(np.exp(-a.losses), a.probs[np.arange(4), a.labels])
    with pytest.raises(KeyError):
        a.take([2])


def test_embeddings_are_deepcuts_default_representation(make_cfg) -> None:
    cfg = make_cfg("method=deepcut")
    _, _, data = prepare(cfg)
    from unlearnbench.models import build_pretrained

    model = build_pretrained(cfg.model, data.num_labels, len(data.tokenizer)).eval()
    pred = predict(model, data.eval_loader("forget"), embeddings=True)
    batch = next(iter(data.eval_loader("forget", batch_size=len(pred))))
    with torch.no_grad():
        out = model(**{k: batch[k] for k in ("input_ids", "attention_mask")}, output_hidden_states=True)
    expected = pool(out.hidden_states[-1], batch["attention_mask"], "cls").numpy()
    order = np.argsort(pred.indices)
    assert np.allclose(pred.embeddings[order], expected[np.argsort(batch["index"].numpy())], atol=1e-5)
    assert predict(model, data.eval_loader("forget")).embeddings is None  # only when asked


# ---------------------------------------------------------------------- a run's evaluation
CHEAP = ["train.epochs=1", "method.epochs=1"]  # a cheap recipe: its own cached original and retrain


@pytest.fixture(scope="module")
def runs(shared_cache, tmp_path_factory):
    """retrain, finetune and original on the same split and cache, in that order."""
    root = tmp_path_factory.mktemp("eval_runs")
    out = {}
    for method in ("retrain", "finetune", "original"):
        extra = CHEAP if method != "original" else CHEAP[:1]
        cfg = compose_cfg([f"method={method}", *extra], shared_cache)
        out[method] = (run_experiment(cfg, root / method), root / method, cfg)
    return out


def test_the_retrained_model_against_itself(runs) -> None:
    results = runs["retrain"][0]
    ref = results["reference"]
    assert ref["is_self"] and ref["cache_key"] == results["method_info"]["retrain_cache_key"]
    for split in ("forget", "test"):
        assert ref[split]["f1_gap"] == 0.0 and ref[split]["agreement"] == 1.0
        assert ref[split]["js_divergence"] == 0.0
    for attack in results["mia"]["attacks"].values():
        assert attack["auc_gap"] == 0.0 and attack["auc"] == attack["auc_retrain"]
    assert results["cost"]["ratio_to_retrain"]["seconds"] == 1.0
    assert results["cost"]["ratio_to_retrain"]["steps"] == 1.0


def close(a, b) -> bool:
    """Nested dicts equal up to float rounding (the original's outputs from differently padded batches)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    return a == pytest.approx(b, rel=1e-4, abs=1e-6)


def test_other_runs_share_the_cached_reference_and_original_outputs(runs) -> None:
    retrain, finetune, original = (runs[m][0] for m in ("retrain", "finetune", "original"))
    _, _, cfg = runs["finetune"]
    ctx = RunContext(cfg, prepare(cfg)[2], None, runs["finetune"][1])
    retrain_cfg = compose_cfg(["method=retrain", CHEAP[0]], cfg.paths.cache_dir)
    assert ctx.reference_spec() == ctx.retrained_spec(prepare(retrain_cfg)[1])
    ref = finetune["reference"]
    assert ref["cache_key"] == retrain["reference"]["cache_key"] and ref["from_cache"] and not ref["is_self"]
    assert ref["retrain_metrics"]["forget"] == retrain["metrics"]["forget"]
    assert finetune["mia"]["attacks"]["loss"]["auc_retrain"] == retrain["mia"]["attacks"]["loss"]["auc"]
    assert finetune["cost"]["retrain"]["steps"] == retrain["cost"]["steps"] > finetune["cost"]["steps"] > 0
    assert finetune["cost"]["peak_rss_mb"] > 0
    # "before" is the original model, whatever the method did to its in-memory copy
    assert finetune["latent"]["before"] == retrain["latent"]["before"]  # the same cached outputs
    assert close(finetune["latent"]["before"], original["latent"]["after"])
    assert original["latent"]["before"] == original["latent"]["after"]
    loss = original["mia"]["attacks"]["loss"]
    assert loss["auc"] == loss["auc_original"]
    assert close(loss["auc"], finetune["mia"]["attacks"]["loss"]["auc_original"])
    for section in ("forget", "test"):
        assert set(finetune["latent"]["after"][section]) == {
            "nearest_own",
            "margin",
            "silhouette",
            "n",
            "n_own",
        }


def test_predictions_parquet_recomputes_the_metrics(runs) -> None:
    results, run_dir, _ = runs["finetune"]
    frame = pd.read_parquet(run_dir / "predictions.parquet")
    assert len(frame) == sum(results["sizes"][s] for s in ("forget", "retain", "val", "test"))
    assert frame.groupby("split").sample_id.nunique().to_dict() == {
        s: results["sizes"][s] for s in ("forget", "retain", "val", "test")
    }
    for split, rows in frame.groupby("split"):
        f1 = f1_score(rows.label, rows.pred, average="macro", zero_division=0)
        assert f1 == pytest.approx(results["metrics"][split]["f1_macro"])
    probs = np.stack(frame.probs)
    assert np.allclose(probs[np.arange(len(frame)), frame.label], frame.prob_label, atol=1e-6)
    assert np.allclose(frame.prob_label, np.exp(-frame.loss))
    mia = frame[frame.split.isin(["forget", "test"])]
    auc = roc_auc_score(mia.split == "forget", -mia.loss)
    assert auc == pytest.approx(results["mia"]["attacks"]["loss"]["auc"])
    # the divergence from retraining, from the two runs' files alone
    ref = pd.read_parquet(runs["retrain"][1] / "predictions.parquet").set_index(["split", "index"])
    forget = frame[frame.split == "forget"].set_index(["split", "index"])
    js = js_divergence(np.stack(forget.probs), np.stack(ref.loc[forget.index].probs)).mean()
    assert js == pytest.approx(results["reference"]["forget"]["js_divergence"], abs=1e-5)

    emb = np.load(run_dir / "embeddings.npz")
    assert set(emb.files) >= {"index", "split", "label", "label_names", "after", "before"}
    assert emb["after"].shape == emb["before"].shape and emb["after"].dtype == np.float16
    assert (emb["split"] == "forget").sum() == results["sizes"]["forget"]
    on_disk = json.loads((run_dir / "results.json").read_text())
    assert on_disk["schema_version"] == 2 and on_disk["timing"]["eval_seconds"] > 0


def test_switched_off_sections_and_splits(shared_cache, tmp_path) -> None:
    cfg = compose_cfg(
        [
            "method=original",
            CHEAP[0],
            "eval.splits=[val]",
            "eval.reference=false",
            "eval.before=false",
            "eval.mia=false",
            "eval.latent=false",
            "eval.predictions=false",
            "eval.embeddings_per_split=0",
        ],
        shared_cache,
    )
    results = run_experiment(cfg, tmp_path)
    assert set(results["metrics"]) == {"val"}
    assert results["reference"] is None and results["mia"] is None and results["latent"] is None
    assert results["before"] is None
    assert not (tmp_path / "predictions.parquet").exists() and not (tmp_path / "embeddings.npz").exists()
    assert results["cost"]["seconds"] == 0.0


def test_whole_class_forgetting_scores_the_kept_classes_of_test(shared_cache, tmp_path) -> None:
    """After whole-class forgetting, ``test_kept`` is the test split without the forgotten class:
    its n and macro-F1 agree with predictions.parquet; a random forget set has no such entry."""
    cfg = compose_cfg(
        [
            "method=retrain",
            *CHEAP,
            "forget=class",
            "forget.class_name=tech",
            "forget.ratio=1.0",
            "eval.mia=false",
        ],
        shared_cache,
    )
    results = run_experiment(cfg, tmp_path / "class")
    frame = pd.read_parquet(tmp_path / "class" / "predictions.parquet")
    test = frame[frame.split == "test"]
    tech = list(prepare(cfg)[2].label_names).index("tech")
    kept = test[test.label != tech]
    assert 0 < len(kept) < len(test)
    scores = results["metrics"]["test_kept"]
    assert scores["n"] == len(kept) and results["metrics"]["test"]["n"] == len(test)
    assert scores["f1"] == pytest.approx(f1_score(kept.label, kept.pred, average="macro", zero_division=0))
    assert scores["accuracy"] == pytest.approx((kept.label == kept.pred).mean())
    # the retrained model never learnt "tech": its full-test score drops, its kept-classes one does not
    assert scores["accuracy"] > results["metrics"]["test"]["accuracy"]
    random = run_experiment(
        compose_cfg(["method=original", CHEAP[0], "eval.mia=false"], shared_cache), tmp_path / "r"
    )
    assert "test_kept" not in random["metrics"]


def test_macro_f1_of_a_single_class_split_ignores_stray_predicted_classes() -> None:
    labels = np.zeros(100, dtype=int)
    preds = np.zeros(100, dtype=int)
    preds[:4] = [1, 2, 3, 4]  # 96 % right, four strays into four other classes
    f1 = classification_metrics(labels, preds)["f1_macro"]
    assert f1 == pytest.approx(2 * 0.96 / 1.96)  # not 0.98 / 5


def test_process_peak_survives_the_resets_of_peak_memory() -> None:
    """PeakMemory resets the kernel's RSS high-water mark (which getrusage and /usr/bin/time read);
    process_peak_rss_mb keeps the process's peak over the resets."""
    big = bytearray(200 * 2**20)
    big[::4096] = b"x" * len(big[::4096])  # touch every page: resident
    peak = process_peak_rss_mb()
    del big
    with PeakMemory():
        pass
    assert process_peak_rss_mb() >= peak - 1.0


def test_a_registered_section_is_computed_written_and_reported(make_cfg, tmp_path) -> None:
    """Adding a metric is one function and its registration: the run computes it into results.json
    and the report shows its declared column, with nothing else edited."""
    from unlearnbench.evaluation import SECTIONS, Column, section
    from unlearnbench.report import write_report

    @section(
        "forget_confidence",
        splits=("forget",),
        columns=(Column("forget p(y)", "forget_confidence_mean", 9.0, digits=3),),
        flatten=lambda record: {"forget_confidence_mean": record["mean"]},
    )
    def forget_confidence(inputs):
        return {"mean": float(np.exp(-inputs.after["forget"].losses).mean())}

    try:
        cfg = make_cfg("method=original", "eval.reference=false", "eval.latent=false")
        results = run_experiment(cfg, tmp_path / "run")
        frame = pd.read_parquet(tmp_path / "run" / "predictions.parquet")
        expected = frame[frame.split == "forget"].prob_label.mean()
        assert results["forget_confidence"]["mean"] == pytest.approx(expected, rel=1e-6)
        table, _ = write_report([tmp_path], tmp_path, plots=False)
        assert table["forget p(y)"].tolist() == [f"{expected:.3f}"]
    finally:
        SECTIONS.pop("forget_confidence")
