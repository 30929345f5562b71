"""The ``reference`` section: this run's model against the retrained model of the same forget set
(the exact unlearning) on the forget and test splits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.spatial.distance import jensenshannon
from sklearn.metrics import accuracy_score

from unlearnbench.evaluation.inputs import EvalInputs
from unlearnbench.evaluation.registry import Column, section
from unlearnbench.tasks import Predictions, Task

NAN = float("nan")
COMPARED = ("forget", "test")


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per-row Jensen-Shannon divergence of two distributions, in bits (in [0, 1]):
    JS(p, q) = 1/2 KL(p || m) + 1/2 KL(q || m), m = (p + q) / 2 (scipy's distance, squared)."""
    if len(p) == 0:
        return np.zeros(0)
    return jensenshannon(p, q, base=2, axis=1) ** 2


def compare_predictions(
    task: Task, model: Predictions, reference: Predictions, label_names: Sequence[str] = ()
) -> dict[str, float]:
    """``model`` against ``reference`` on the same samples (matched by dataset index):

    - ``f1_gap``: |F1(model) - F1(reference)|, the task's main F1 against the true labels
    - ``accuracy_gap``: |acc(model) - acc(reference)|
    - ``agreement``: share of rows (samples, or words) on which both predict the same class
    - ``js_divergence``: mean over rows of JS(p_model(.|x), p_reference(.|x)), bits
    """
    if len(model) == 0:
        return {"f1_gap": NAN, "accuracy_gap": NAN, "agreement": NAN, "js_divergence": NAN, "n": 0}
    model, ref = task.align(model, reference)
    mine, theirs = task.metrics(model, label_names), task.metrics(ref, label_names)
    return {
        "f1_gap": abs(mine["f1"] - theirs["f1"]),
        "accuracy_gap": abs(mine["accuracy"] - theirs["accuracy"]),
        "agreement": float(accuracy_score(ref.preds, model.preds)),
        "js_divergence": float(js_divergence(model.probs, ref.probs).mean()),
        "n": model.n_samples,
    }


def flatten_reference(record: dict[str, Any]) -> dict[str, float]:
    row = {}
    for split in COMPARED:
        for key, name in (("f1_gap", "f1_gap"), ("agreement", "agreement"), ("js_divergence", "js")):
            if isinstance(record.get(split), dict):
                value = record[split].get(key)
                row[f"ref_{split}_{name}"] = NAN if value is None else float(value)
    return row


@section(
    "reference",
    splits=COMPARED,
    reference=True,
    switch="reference",
    columns=(
        # forget_f1_gap: against a retrain run of the report when there is one (report.tables)
        Column("gap F1 forget", "forget_f1_gap", 4.0, scale=100.0, better="min"),
        Column("JS forget", "ref_forget_js", 6.0, digits=3, better="min"),
    ),
    flatten=flatten_reference,
)
def reference(inputs: EvalInputs) -> dict[str, Any]:
    """Per split (forget, test): ``compare_predictions`` with the retrained model, and its scores."""
    ref, names, task, splits = inputs.reference, inputs.label_names, inputs.task, inputs.ctx.data.splits
    assert ref is not None
    return {
        **ref.info,
        **{s: compare_predictions(task, inputs.after[s], ref.outputs, names) for s in COMPARED},
        "retrain_metrics": {s: task.metrics(ref.outputs.take(splits[s]), names) for s in COMPARED},
    }
