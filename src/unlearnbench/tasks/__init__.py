"""Tasks: sequence classification and token classification, each a record type and a strategy
(:class:`~unlearnbench.tasks.base.Task`) that owns everything the two tell apart."""

from __future__ import annotations

from unlearnbench.errors import ConfigError
from unlearnbench.tasks.base import IGNORE_INDEX, Task, Units, wrong_labels
from unlearnbench.tasks.bio import OUTSIDE
from unlearnbench.tasks.pooling import CHOICES as POOLING_CHOICES
from unlearnbench.tasks.pooling import POOLINGS, last_positions, pool
from unlearnbench.tasks.predictions import Predictions, empty_predictions
from unlearnbench.tasks.sequence import SequenceClassification, TextDataset
from unlearnbench.tasks.token import TokenClassification, TokenDataset

TASKS: dict[str, Task] = {t.name: t for t in (SequenceClassification(), TokenClassification())}
Dataset = TextDataset | TokenDataset


def get_task(name: str | None) -> Task:
    """The task ``data.task`` names (default: sequence classification)."""
    name = name or SequenceClassification.name
    if name not in TASKS:
        raise ConfigError("data.task", name, f"one of {', '.join(TASKS)}")
    return TASKS[name]


def task_of(data: Dataset) -> Task:
    """The task of a loaded dataset (its record type)."""
    return TASKS[data.task]


def task_of_architectures(architectures: list[str]) -> Task:
    """The task of a saved model, from the head named in its config (``...ForTokenClassification``)."""
    token = any(a.endswith("ForTokenClassification") for a in architectures)
    return TASKS[TokenClassification.name if token else SequenceClassification.name]


__all__ = [
    "IGNORE_INDEX",
    "OUTSIDE",
    "POOLINGS",
    "POOLING_CHOICES",
    "TASKS",
    "Dataset",
    "Predictions",
    "SequenceClassification",
    "Task",
    "TextDataset",
    "TokenClassification",
    "TokenDataset",
    "Units",
    "empty_predictions",
    "get_task",
    "last_positions",
    "pool",
    "task_of",
    "task_of_architectures",
    "wrong_labels",
]
