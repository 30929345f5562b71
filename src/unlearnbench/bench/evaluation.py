"""(d) Evaluation throughput: the project's evaluation pass (length-sorted batches, dynamic padding,
inference mode) against the plain one (dataset order, padded to max_length, no_grad) on the same
model and split, and whether their predictions and metrics agree."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TypedDict

import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from unlearnbench import pipeline
from unlearnbench.bench.common import bench_context, median
from unlearnbench.runtime.fit import eval_device
from unlearnbench.runtime.outputs import predict
from unlearnbench.tasks import Predictions


class EvalRecord(TypedDict):
    split: str
    n: int
    max_length: int
    mean_length: float
    batch_size: int
    repeats: int
    samples_per_s_fast: float
    samples_per_s_plain: float
    ratio: float  # median of the per-repeat (plain seconds / fast seconds)
    max_abs_logit_diff: float
    same_predictions: bool
    logits_allclose: bool
    same_metrics: bool
    metrics: dict[str, float]


class MaxLengthCollator:
    """Pads every batch to ``max_length`` (the plain way): the baseline of (d)."""

    def __init__(self, collate, max_length: int) -> None:
        self.collate, self.max_length = collate, max_length

    def __call__(self, items):
        batch = self.collate(items)
        width = batch["input_ids"].shape[1]
        pad = self.max_length - width
        if pad > 0:
            ids = torch.full((len(items), pad), self.collate.pad_token_id, dtype=torch.long)
            batch["input_ids"] = torch.cat([batch["input_ids"], ids], dim=1)
            batch["attention_mask"] = torch.cat([batch["attention_mask"], torch.zeros_like(ids)], dim=1)
        return batch


@torch.no_grad()
def plain_predict(model, loader: DataLoader) -> Predictions:
    """The baseline: no_grad (not inference_mode), fixed order, every batch padded to max_length."""
    model.eval()
    device = next(model.parameters()).device
    logits, labels, indices = [], [], []
    for batch in loader:
        out = model(
            input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
        )
        logits.append(out.logits.float().cpu())
        labels.append(batch["labels"])
        indices.append(batch["index"])
    return Predictions(torch.cat(logits).numpy(), torch.cat(labels).numpy(), torch.cat(indices).numpy())


def eval_throughput(cfg: DictConfig, split: str, repeats: int) -> EvalRecord:
    """The project's eval path (length-sorted batches, dynamic padding, inference_mode) vs the plain
    one (dataset order, padded to max_length, no_grad) on the same model and split: samples/s of each,
    their ratio (median of interleaved repeats), and whether predictions and metrics agree."""
    _, _, data = pipeline.prepare(cfg)
    ctx = bench_context(cfg, data, Path("."))
    model = ctx.pretrained().eval().to(eval_device(cfg.trainer))
    subset = data.subset(split)
    plain_loader = DataLoader(
        subset,
        batch_size=data.eval_batch_size,
        shuffle=False,
        collate_fn=MaxLengthCollator(data.collate, data.max_length),
    )
    fast_t, plain_t = [], []
    fast = plain = None
    for _ in range(repeats):
        t = time.perf_counter()
        fast = predict(model, data.eval_loader(split)).sorted()
        fast_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        plain = plain_predict(model, plain_loader).sorted()
        plain_t.append(time.perf_counter() - t)
    assert fast is not None and plain is not None, "repeats must be at least 1"
    names = data.label_names
    m_fast, m_plain = data.task.metrics(fast, names), data.task.metrics(plain, names)
    lengths = subset.lengths()
    return {
        "split": split,
        "n": len(subset),
        "max_length": data.max_length,
        "mean_length": float(lengths.mean()),
        "batch_size": data.eval_batch_size,
        "repeats": repeats,
        "samples_per_s_fast": len(subset) / median(fast_t),
        "samples_per_s_plain": len(subset) / median(plain_t),
        "ratio": median([p / f for f, p in zip(fast_t, plain_t, strict=True)]),
        "max_abs_logit_diff": float(np.abs(fast.logits - plain.logits).max()),
        "same_predictions": bool(np.array_equal(fast.preds, plain.preds)),
        "logits_allclose": bool(np.allclose(fast.logits, plain.logits, atol=1e-4, rtol=1e-4)),
        "same_metrics": m_fast == m_plain,
        "metrics": m_fast,
    }
