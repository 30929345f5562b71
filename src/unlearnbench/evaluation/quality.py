"""The ``forget_quality`` section: forget quality as in the NeurIPS 2023 unlearning competition
(:mod:`.forget_quality`), from the run's pools (``eval.pool.size=N``): the logit-scaled confidence
of every forget example under the N members of the method's pool against the N retrained models,
the final score with the utility ratios, and a per-example likelihood-ratio attack (U-LiRA style,
leave-one-out over the pools). The per-example values go to forget_quality.npz beside results.json.

For ``method=original`` the method's pool is N originals (training seeds differ), and for
``method=retrain`` a second retrained pool: their scores are the benchmark's power (how far the
original is from retraining) and its ceiling (how close two retrained pools come).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from unlearnbench.evaluation.forget_quality import (
    final_score,
    forget_quality,
    logit_scaled_confidence,
)
from unlearnbench.evaluation.inputs import EvalInputs
from unlearnbench.evaluation.registry import Column, section
from unlearnbench.evaluation.ulira import ulira_auc
from unlearnbench.io import atomic_path
from unlearnbench.results import QUALITY_FILE
from unlearnbench.runtime.pools import MemberOutputs

NAN = float("nan")


def confidences(inputs: EvalInputs, members: list[MemberOutputs]) -> np.ndarray:
    """[models, examples]: each forget sample's logit-scaled confidence (a sentence's: the mean of its
    words') under each member."""
    rows = []
    for member in members:
        pred = member.forget
        f = logit_scaled_confidence(pred.logits, pred.labels)
        rows.append(inputs.task.per_sample(pred, {"f": f})["f"])
    return np.stack(rows)


def flatten_quality(record: dict[str, Any]) -> dict[str, float]:
    keys = {"score": "fq_score", "final_score": "fq_final_score", "ulira_auc": "fq_ulira_auc"}
    keys |= {"eps_mean": "fq_eps_mean", "share_capped": "fq_share_capped", "n_models": "fq_n_models"}
    return {flat: NAN if record.get(key) is None else float(record[key]) for key, flat in keys.items()}


@section(
    "forget_quality",
    columns=(
        Column("FQ", "fq_score", 4.5, digits=3, better="max"),
        Column("FQ final", "fq_final_score", 4.6, digits=3, better="max"),
        Column("U-LiRA AUC", "fq_ulira_auc", 5.5, digits=3),
    ),
    flatten=flatten_quality,
)
def quality(inputs: EvalInputs) -> dict[str, Any] | None:
    pools = inputs.pools
    if pools is None:
        return None
    unlearned, retrained = confidences(inputs, pools.unlearned), confidences(inputs, pools.retrained)
    fq = forget_quality(unlearned, retrained)
    accuracy = {
        split: {
            "unlearned": float(np.mean([getattr(m, f"{split}_accuracy") for m in pools.unlearned])),
            "retrained": float(np.mean([getattr(m, f"{split}_accuracy") for m in pools.retrained])),
        }
        for split in ("retain", "test")
    }
    final = final_score(
        fq.score,
        accuracy["retain"]["unlearned"],
        accuracy["retain"]["retrained"],
        accuracy["test"]["unlearned"],
        accuracy["test"]["retrained"],
    )
    auc = ulira_auc(unlearned, retrained) if pools.n_models >= 3 else None  # its fits leave one model out
    indices = np.unique(pools.retrained[0].forget.indices)
    with atomic_path(Path(inputs.run_dir) / QUALITY_FILE) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh,
            index=indices,
            eps=fq.per_example_eps,
            points=fq.per_example_points,
            unlearned=unlearned,
            retrained=retrained,
        )
    return {
        "score": fq.score,
        "final_score": final,
        "ulira_auc": auc,
        "eps_mean": fq.eps_mean,
        "eps_median": fq.eps_median,
        "share_capped": fq.share_capped,
        "n_models": fq.n_models,
        "n_examples": fq.n_examples,
        "n_buckets": fq.n_buckets,
        "pool": pools.varies,
        "accuracy": accuracy,
        "unit": inputs.task.mia_unit,
    }
