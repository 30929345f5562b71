"""Deletion requests one after another (``forget=requests``, ``forget=sequential``): request k is
unlearned starting from the model request k - 1 left, on the data without requests 1..k-1; after
each, the model is scored on everything forgotten so far and on test, against retraining on D minus
requests 1..k (when ``eval.reference`` is on), and the cost adds up (for SISA: the shards retrained).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

import numpy as np

from unlearnbench.io import atomic_dir
from unlearnbench.methods import Method
from unlearnbench.models import save_model
from unlearnbench.runtime import FitStats, RunContext, UnlearnOutcome
from unlearnbench.runtime.memory import PeakMemory
from unlearnbench.runtime.outputs import cached_outputs, predict
from unlearnbench.runtime.store import StoreEntry

log = logging.getLogger(__name__)
REQUESTS_DIR = "requests"
CARRIED = ("n_retrained_shards", "retrained_shards", "n_retrained_slices", "skipped_anchors", "anchors")


def _scores(ctx: RunContext, model, done: np.ndarray) -> dict[str, dict[str, float]]:
    data, task = ctx.data, ctx.data.task
    model = ctx.on_eval_device(model)
    return {
        "forget": task.metrics(predict(model, data.eval_loader("forget", indices=done)), data.label_names),
        "test": task.metrics(predict(model, data.eval_loader("test")), data.label_names),
    }


def _reference(ctx: RunContext, done: np.ndarray) -> dict[str, dict[str, float]]:
    """The retrained model of D minus ``done``: its scores on ``done`` and test (stored outputs)."""
    data = ctx.data
    ref_ctx = RunContext(
        ctx.cfg, data.request_view(done, np.array([], dtype=np.int64)), ctx.store, ctx.run_dir
    )
    entry = ref_ctx.reference_retrained()
    indices = np.concatenate([done, data.splits.test])

    def compute():
        model = ctx.on_eval_device(entry.model)
        parts = [
            predict(model, data.eval_loader("forget", indices=done)),
            predict(model, data.eval_loader("test")),
        ]
        return type(parts[0]).concat(parts)

    pred = cached_outputs(entry.path / "eval", indices, compute)[0]
    names = data.label_names
    return {
        "forget": data.task.metrics(pred.take(done), names),
        "test": data.task.metrics(pred.take(data.splits.test), names),
        "cache_key": entry.key,
    }


def run_requests(
    ctx: RunContext, method_cls: type[Method], params: Any
) -> tuple[UnlearnOutcome, list[dict[str, Any]]]:
    """Every request in turn; returns the last model (with the summed cost) and one record per request."""
    data = ctx.data
    done = np.array([], dtype=np.int64)
    previous: StoreEntry = ctx.original()
    total, records, outcome = FitStats(), [], None
    for k, request in enumerate(data.requests, start=1):
        record: dict[str, Any] = {"request": k, "n_request": len(request)}
        if len(request) == 0:  # nothing of it was a training sample: nothing to unlearn
            records.append({**record, "n_forgotten": len(done), "skipped": True})
            continue
        step_dir = ctx.run_dir / REQUESTS_DIR / str(k)
        step = RunContext(ctx.cfg, data.request_view(request, done), ctx.store, step_dir)
        step._original = previous
        log.info(
            "[%s] request %d of %d: %d samples", ctx.cfg.method.name, k, len(data.requests), len(request)
        )
        with PeakMemory() as memory:
            outcome = method_cls.run(step, params)
        done = np.union1d(done, request)
        for key in ("seconds", "steps", "samples"):
            setattr(total, key, getattr(total, key) + getattr(outcome.stats, key))
        with atomic_dir(step_dir / "model") as tmp:  # the next request starts from it
            save_model(outcome.model, tmp)
        previous = StoreEntry(outcome.model, f"request-{k}", step_dir / "model", {}, hit=False)
        after = _scores(ctx, outcome.model, done)
        record.update(
            n_forgotten=len(done),
            forget=after["forget"],
            test=after["test"],
            cost={**asdict(outcome.stats), **memory.as_dict(), "cumulative_seconds": total.seconds},
            info={k: v for k, v in outcome.info.items() if k in CARRIED},
        )
        if ctx.cfg.eval.get("reference", True):
            ref = _reference(ctx, done)
            record["reference"] = {
                "cache_key": ref["cache_key"],
                "forget_f1": ref["forget"]["f1"],
                "test_f1": ref["test"]["f1"],
                "f1_gap": abs(after["forget"]["f1"] - ref["forget"]["f1"]),
            }
        records.append(record)
    assert outcome is not None, "no request named a training sample"
    info = {"requests": [{k: r.get(k) for k in ("request", "n_request", "info")} for r in records]}
    return UnlearnOutcome(outcome.model, total, {**outcome.info, **info}), records
