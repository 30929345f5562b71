"""The files beside results.json: ``predictions.parquet`` (one row per evaluated sample: every
metric but the latent ones can be recomputed from it) and ``embeddings.npz`` (a seeded sample of
embeddings before and after unlearning, for the report's 2-D map)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from unlearnbench.evaluation.inputs import EvalInputs
from unlearnbench.evaluation.registry import Option, section
from unlearnbench.io import atomic_path
from unlearnbench.results import EMBEDDINGS_FILE, PREDICTIONS_FILE
from unlearnbench.tasks import Predictions, Task


def predictions_frame(
    task: Task, outputs: Mapping[str, Predictions], sample_ids: Sequence[str]
) -> pd.DataFrame:
    """One row per evaluated sample: split, index, sample_id, label, pred, loss (nats), prob_label
    (p(label | x) = exp(-loss)), probs (the predictive distribution, softmax of the logits)."""
    frames = []
    for split, pred in outputs.items():
        probs = pred.probs if len(pred) else np.zeros((0, 0))
        frames.append(
            pd.DataFrame(
                {
                    "split": split,
                    "index": pred.indices.astype(np.int64),
                    "sample_id": [str(sample_ids[int(i)]) for i in pred.indices],
                    **task.frame_columns(pred),
                    "label": pred.labels.astype(np.int64),
                    "pred": pred.preds.astype(np.int64) if len(pred) else np.zeros(0, np.int64),
                    "loss": pred.losses,
                    "prob_label": np.exp(-pred.losses),
                    "probs": list(probs.astype(np.float32)),
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def write_parquet(frame: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def write_embeddings(
    task: Task,
    path: str | Path,
    samples: Mapping[str, np.ndarray],
    after: Mapping[str, Predictions],
    before: Predictions | None,
    label_names: Sequence[str],
    pooling: str = "cls",
) -> None:
    """``embeddings.npz`` for the 2-D map: for the dataset indices ``samples[split]``, ``index``,
    ``split``, ``label``, ``after`` (this run's model) and ``before`` (the original), float16, and
    ``pooling``, what a sequence's embedding is (as results.json's ``latent.embedding`` says)."""
    splits = [s for s in samples if len(samples[s])]
    parts = [after[s].take(samples[s]) for s in splits]
    index = np.concatenate([p.indices for p in parts]) if parts else np.zeros(0, np.int64)
    arrays: dict[str, np.ndarray] = {
        "index": index.astype(np.int64),
        "split": np.array([s for s, p in zip(splits, parts, strict=True) for _ in range(len(p))], dtype=str),
        "label_names": np.array(list(label_names), dtype=str),
        "pooling": np.array(pooling, dtype=str),
    }
    columns = [task.frame_columns(p) for p in parts]
    for name in columns[0] if columns else ():
        arrays[name] = np.concatenate([c[name] for c in columns])
    arrays["label"] = np.concatenate([p.labels for p in parts]) if parts else np.zeros(0, np.int64)
    if parts and all(p.embeddings is not None for p in parts):
        arrays["after"] = np.concatenate([p.embeddings for p in parts]).astype(np.float16)
    if before is not None and before.embeddings is not None and before.covers(index):
        sampled = np.concatenate([samples[s] for s in splits]) if splits else index
        arrays["before"] = before.take(sampled).embeddings.astype(np.float16)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


@section("predictions", switch="predictions", writes_file=True)
def predictions_file(inputs: EvalInputs) -> None:
    frame = predictions_frame(inputs.task, inputs.after, inputs.ctx.data.records.ids)
    write_parquet(frame, Path(inputs.run_dir) / PREDICTIONS_FILE)


@section(
    "embeddings",
    original=True,
    switch="embeddings_per_split",
    options=(Option("embeddings_per_split", 300),),
    writes_file=True,
    embeddings=True,
)
def embeddings_file(inputs: EvalInputs) -> None:
    """At most ``eval.embeddings_per_split`` seeded forget, retain and test samples (0: no file)."""
    rng = np.random.default_rng([inputs.ctx.seed, 52711])
    cap, samples = inputs.opts.get("embeddings_per_split"), {}
    for s in ("forget", "retain", "test"):
        if s in inputs.after:
            idx = np.unique(inputs.after[s].indices)
            take = min(cap, len(idx))
            samples[s] = np.sort(rng.choice(idx, size=take, replace=False)) if take else idx[:0]
    path = Path(inputs.run_dir) / EMBEDDINGS_FILE
    write_embeddings(
        inputs.task, path, samples, inputs.after, inputs.before, inputs.label_names, inputs.ctx.pooling
    )
