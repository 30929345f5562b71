"""The ``design`` section: what a forget design that changed the training data leaves behind, for
this run's model against the original, the retrained reference and the clean model (trained on the
data before any change):

- ``label_swap``: accuracy and F1 on the swapped samples under their true labels (the corrected
  answer) and under the swapped labels the original was trained on (the memorized answer);
- ``backdoor``: the same on the poisoned samples, and the attack success rate on the design's
  triggered test samples of the other classes (the share moved to the target);
- ``memorized``: the proxy and the scores of the forget set against the training set.

None for designs that neither change the data nor rank it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from unlearnbench.evaluation.inputs import EvalInputs
from unlearnbench.evaluation.registry import Column, section
from unlearnbench.io import stable_hash
from unlearnbench.runtime.outputs import cached_outputs, predict
from unlearnbench.tasks import Predictions

NAN = float("nan")


def _scores(inputs: EvalInputs, pred: Predictions, asr: float | None) -> dict[str, Any]:
    task, names, data = inputs.task, inputs.label_names, inputs.ctx.data
    trained = task.metrics(pred, names)
    true = task.metrics(task.with_labels_of(pred, data.clean_records), names)
    keep = ("accuracy", "f1")
    return {
        "train_labels": {k: trained[k] for k in keep},
        "true_labels": {k: true[k] for k in keep},
        "attack_success": asr,
    }


def _outputs(inputs: EvalInputs, model, entry_dir=None) -> tuple[Predictions, Predictions | None]:
    """A model's outputs on the changed samples and on the design's probe (cached in a store entry)."""
    data = inputs.ctx.data
    manipulated = data.splits.manipulated

    def on_changed() -> Predictions:
        return predict(inputs.ctx.on_eval_device(model()), data.eval_loader("manipulated"))

    def on_probe() -> Predictions:
        return predict(inputs.ctx.on_eval_device(model()), data.probe_loader())

    if entry_dir is None:
        changed = on_changed().sorted()
        probe = on_probe().sorted() if data.probe is not None else None
        return changed, probe
    changed = cached_outputs(entry_dir / "eval", manipulated, on_changed, tag="manipulated")[0]
    probe = None
    if data.probe is not None:
        tag = "probe-" + stable_hash(data.probe.ids, 16)
        probe = cached_outputs(entry_dir / "eval", np.arange(len(data.probe)), on_probe, tag=tag)[0]
    return changed, probe


def flatten_design(record: dict[str, Any]) -> dict[str, float]:
    row = {}
    models = record.get("models")
    if not isinstance(models, dict):  # a design that ranks samples and changes none
        return row
    for who, prefix in (("model", "design"), ("clean", "design_clean")):
        scores = models.get(who) or {}
        for key, name in (("true_labels", "true_accuracy"), ("train_labels", "train_accuracy")):
            value = (scores.get(key) or {}).get("accuracy")
            row[f"{prefix}_{name}"] = NAN if value is None else float(value)
        asr = scores.get("attack_success")
        row[f"{prefix}_asr"] = NAN if asr is None else float(asr)
    return row


@section(
    "design",
    columns=(
        Column("true acc changed", "design_true_accuracy", 3.5, scale=100.0, better="max"),
        Column("ASR", "design_asr", 3.6, scale=100.0, better="min"),
    ),
    flatten=flatten_design,
)
def design(inputs: EvalInputs) -> dict[str, Any] | None:
    data, ctx = inputs.ctx.data, inputs.ctx
    strategy = ctx.cfg.forget.get("strategy")
    if getattr(data, "memorization", None) is not None:
        scores, facts = data.memorization
        member = np.isin(data.train_indices, data.splits.forget)
        return {
            "strategy": strategy,
            **facts,
            "score": {"forget_mean": float(scores[member].mean()), "train_mean": float(scores.mean())},
        }
    if not data.manipulated:
        requests = data.design_info.get("requests")
        return {"strategy": strategy, "requests": requests} if requests is not None else None
    target = data.design_info.get("target")
    models = {
        "model": (lambda: inputs.outcome.model, None),
        "original": (lambda: ctx.original().model, ctx.original().path),
        "retrain": (lambda: ctx.reference_retrained().model, ctx.reference_retrained().path),
        "clean": (lambda: ctx.clean().original().model, ctx.clean().original().path),
    }
    scored = {}
    for who, (model, entry_dir) in models.items():
        changed, probe = _outputs(inputs, model, entry_dir)
        asr = inputs.task.attack_success(probe, data.probe, target) if probe is not None else None
        scored[who] = _scores(inputs, changed, asr)
    return {
        "strategy": strategy,
        **data.design_info,
        "identified": len(data.splits.forget) / len(data.splits.manipulated),
        "n_changed": len(data.splits.manipulated),
        "n_identified": len(data.splits.forget),
        "models": scored,
    }
