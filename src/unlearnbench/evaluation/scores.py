"""The ``metrics`` section: the task's scores on every evaluated split, and after whole-class
forgetting the scores on the test samples of the classes that were kept (``test_kept``)."""

from __future__ import annotations

from typing import Any

from unlearnbench.evaluation.inputs import EvalInputs
from unlearnbench.evaluation.registry import Column, section

TEST_KEPT = "test_kept"


def flatten_metrics(record: dict[str, Any]) -> dict[str, float]:
    row = {}
    for split, metrics in record.items():
        for name, value in metrics.items():
            if name != "n":
                row[f"{split}_{name}"] = value
        if "f1" not in metrics and "f1_macro" in metrics:  # results written before the task-level "f1"
            row[f"{split}_f1"] = metrics["f1_macro"]
    return row


@section(
    "metrics",
    columns=(
        Column("forget acc", "forget_accuracy", 1.0, scale=100.0),
        Column("forget F1", "forget_f1", 1.1, scale=100.0),
        Column("retain acc", "retain_accuracy", 2.0, scale=100.0, better="max"),
        Column("retain F1", "retain_f1", 2.1, scale=100.0, better="max"),
        Column("test acc", "test_accuracy", 3.0, scale=100.0, better="max"),
        Column("test F1", "test_f1", 3.1, scale=100.0, better="max"),
        # whole-class forgetting: test F1 on the kept classes (the full test split loses the forgotten one)
        Column("test F1 kept", "test_kept_f1", 3.2, scale=100.0, better="max"),
    ),
    flatten=flatten_metrics,
)
def metrics(inputs: EvalInputs) -> dict[str, Any]:
    """Per split, the task's scores (``f1``: macro-F1 of classes, or entity micro-F1 of tags)."""
    task, names = inputs.task, inputs.label_names
    out = {split: task.metrics(pred, names) for split, pred in inputs.after.items()}
    forgotten = inputs.ctx.data.forgotten_classes()
    if forgotten and "test" in inputs.after:
        kept = task.kept_class_metrics(inputs.after["test"], forgotten, names)
        if kept is not None:
            out[TEST_KEPT] = kept
    return out


@section("before", switch="before", original=True, splits=("forget", "test"))
def before(inputs: EvalInputs) -> dict[str, Any]:
    """The original model's scores on the forget set and on test: what the run started from."""
    task, names = inputs.task, inputs.label_names
    return {split: task.metrics(inputs.before_on(split), names) for split in ("forget", "test")}
