"""The ``mia`` section: population membership-inference attacks, forget samples (members) against
test samples (non-members), one threshold over all samples, scored by ROC AUC; for this run's
model, the retrained model (when the reference is evaluated) and the original."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import entropy
from sklearn.metrics import roc_auc_score

from unlearnbench.evaluation.inputs import EvalInputs
from unlearnbench.evaluation.registry import Column, section
from unlearnbench.tasks import Predictions, Task

NAN = float("nan")
ATTACKS = ("loss", "entropy", "modified_entropy")


def modified_entropy(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Song & Mittal 2021 ("Systematic evaluation of privacy risks of ML models", USENIX Security):
    Mentr(p, y) = -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i). Low for a confident, correct
    prediction (a member), high for a confident, wrong one; unlike entropy it uses the label."""
    if len(probs) == 0:
        return np.zeros(0)
    rows = np.arange(len(labels))
    p_y = probs[rows, labels]
    own = -(1.0 - p_y) * np.log(np.clip(p_y, 1e-300, None))
    others = -probs * np.log1p(-np.clip(probs, 0.0, 1.0 - 1e-12))
    others[rows, labels] = 0.0
    return own + others.sum(axis=1)


def membership_scores(task: Task, pred: Predictions) -> dict[str, np.ndarray]:
    """Per-sample attack scores, higher = more likely a training member:
    ``loss``: -CE(y, p); ``entropy``: -H(p) (nats); ``modified_entropy``: -Mentr(p, y).
    Rows are turned into samples by the task (a sentence's score is the mean of its words')."""
    probs = pred.probs if len(pred) else np.zeros((0, 1))
    scores = {
        "loss": -pred.losses,
        "entropy": -entropy(probs, axis=1) if len(pred) else np.zeros(0),
        "modified_entropy": -modified_entropy(probs, pred.labels),
    }
    return task.per_sample(pred, scores)


def mia_aucs(task: Task, members: Predictions, nonmembers: Predictions) -> dict[str, float]:
    """ROC AUC of each threshold attack separating ``members`` (label 1) from ``nonmembers`` (0):
    0.5 = indistinguishable, 1 = every member scores above every non-member, < 0.5 = the reverse."""
    if len(members) == 0 or len(nonmembers) == 0:
        return dict.fromkeys(ATTACKS, NAN)
    m, n = membership_scores(task, members), membership_scores(task, nonmembers)
    y = np.r_[np.ones(members.n_samples), np.zeros(nonmembers.n_samples)]
    return {a: float(roc_auc_score(y, np.r_[m[a], n[a]])) for a in ATTACKS}


def flatten_mia(record: dict[str, Any]) -> dict[str, float]:
    row = {}
    for attack, values in (record.get("attacks") or {}).items():
        for key in ("auc", "auc_gap"):
            value = values.get(key)
            row[f"mia_{attack}_{key}"] = NAN if value is None else float(value)
    return row


@section(
    "mia",
    splits=("forget", "test"),
    original=True,
    switch="mia",
    columns=(Column("MIA AUC", "mia_loss_auc", 5.0, digits=3),),
    flatten=flatten_mia,
)
def mia(inputs: EvalInputs) -> dict[str, Any]:
    """AUC of each attack for this run's model, the retrained model and the original; ``auc_gap`` =
    |AUC - AUC_retrain| (0: as private as retraining)."""
    task, after, splits = inputs.task, inputs.after, inputs.ctx.data.splits
    aucs = mia_aucs(task, after["forget"], after["test"])
    reference = inputs.reference.outputs if inputs.reference is not None else None
    ref = (
        mia_aucs(task, reference.take(splits.forget), reference.take(splits.test))
        if reference is not None
        else None
    )
    before = inputs.before
    orig = (
        mia_aucs(task, before.take(splits.forget), before.take(splits.test)) if before is not None else None
    )
    attacks = {}
    for name in ATTACKS:
        attacks[name] = {
            "auc": aucs[name],
            "auc_retrain": ref[name] if ref else None,
            "auc_gap": abs(aucs[name] - ref[name]) if ref else None,
            "auc_original": orig[name] if orig else None,
        }
    return {
        "members": "forget",
        "nonmembers": "test",
        "n_members": after["forget"].n_samples,
        "n_nonmembers": after["test"].n_samples,
        "unit": task.mia_unit,
        "attacks": attacks,
    }
