"""The ``sequential`` section: deletion requests one after another (``forget=requests``,
``forget=sequential``): per request, the model's scores on everything forgotten so far and on test,
its forget-F1 gap to retraining on D minus requests 1..k, and the cost so far."""

from __future__ import annotations

from typing import Any

from unlearnbench.evaluation.inputs import EvalInputs
from unlearnbench.evaluation.registry import section

NAN = float("nan")


def flatten_sequence(record: dict[str, Any]) -> dict[str, float]:
    done = [r for r in record.get("requests", []) if not r.get("skipped")]
    if not done:
        return {}
    last = done[-1]
    gap = (last.get("reference") or {}).get("f1_gap")
    return {
        "seq_requests": float(len(record["requests"])),
        "seq_final_forget_gap": NAN if gap is None else float(gap),
        "seq_cumulative_seconds": float(last["cost"]["cumulative_seconds"]),
    }


@section("sequential", flatten=flatten_sequence)
def sequential(inputs: EvalInputs) -> dict[str, Any] | None:
    if inputs.sequence is None:
        return None
    return {"n_requests": len(inputs.sequence), "requests": inputs.sequence}
