"""The ``cost`` section: what the unlearning step cost (wall seconds, optimiser steps, samples,
peak memory) and its ratio to retraining (from the retrained model's store entry, when it exists)."""

from __future__ import annotations

from typing import Any

from unlearnbench.evaluation.inputs import EvalInputs
from unlearnbench.evaluation.registry import Column, section
from unlearnbench.runtime.memory import process_peak_rss_mb

COST_KEYS = ("seconds", "steps", "samples", "peak_rss_mb")
NAN = float("nan")


def cost_section(own: dict[str, Any], retrain: dict[str, Any] | None) -> dict[str, Any]:
    """``own`` and ``retrain``: seconds, steps, samples, peak_rss_mb (and peak_gpu_mb, memory_scope);
    ``ratio_to_retrain``: own / retrain for each of COST_KEYS (None where either is missing or 0)."""
    ratio = None
    if retrain is not None:
        ratio = {}
        for key in COST_KEYS:
            mine, theirs = own.get(key), retrain.get(key)
            ratio[key] = mine / theirs if mine is not None and theirs else None
    return {**own, "retrain": retrain, "ratio_to_retrain": ratio}


def retrain_cost(meta: dict[str, Any]) -> dict[str, Any]:
    fit, memory = meta.get("fit") or {}, meta.get("memory") or {}
    return {
        "seconds": fit.get("seconds"),
        "steps": fit.get("steps"),
        "samples": fit.get("samples"),
        "peak_rss_mb": memory.get("peak_rss_mb"),
        "peak_gpu_mb": memory.get("peak_gpu_mb"),
        "trainable_parameters": fit.get("trainable_parameters"),
    }


def flatten_cost(record: dict[str, Any]) -> dict[str, float]:
    row = {
        column: NAN if record.get(key) is None else float(record[key])
        for key, column in (
            ("peak_rss_mb", "peak_rss_mb"),
            ("trainable_parameters", "trainable_parameters"),
            ("steps", "unlearn_steps"),
        )
    }
    for key, value in (record.get("ratio_to_retrain") or {}).items():
        row[f"cost_{key}_ratio"] = NAN if value is None else float(value)
    return row


@section(
    "cost",
    columns=(
        Column("unlearn s", "unlearn_seconds", 7.0, better="min"),
        # ratio_to_retrain: against a retrain run of the report when there is one (report.tables)
        Column("× retrain", "ratio_to_retrain", 8.0, digits=3, better="min", spread=False),
    ),
    flatten=flatten_cost,
)
def cost(inputs: EvalInputs) -> dict[str, Any]:
    """The step's own cost, retraining's beside it, and the whole process's peak memory (the job's,
    the training of stored models included: /usr/bin/time under-reports it)."""
    meta = inputs.reference_meta()
    own_memory = dict(inputs.memory)
    reference = inputs.reference
    if reference is not None and reference.info["is_self"] and (meta or {}).get("memory"):
        own_memory = {**own_memory, **meta["memory"]}  # the memory of its training, as its seconds
    stats = inputs.outcome.stats
    own = {
        "seconds": stats.seconds,
        "steps": stats.steps,
        "samples": stats.samples,
        "trainable_parameters": stats.trainable_parameters,  # None for a method that does not train
        **own_memory,
    }
    return {
        **cost_section(own, retrain_cost(meta) if meta else None),
        "process_peak_rss_mb": process_peak_rss_mb(),
    }
