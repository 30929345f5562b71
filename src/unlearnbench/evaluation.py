"""Evaluation: predictions of a model on a split, and the metrics computed from them (scikit-learn)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score
from torch.utils.data import DataLoader
from transformers import PreTrainedModel


@dataclass
class Predictions:
    logits: np.ndarray  # (N, C) float32
    labels: np.ndarray  # (N,)
    indices: np.ndarray  # (N,) dataset indices, in the order the loader gave them

    @property
    def preds(self) -> np.ndarray:
        return self.logits.argmax(axis=1)


@torch.inference_mode()
def predict(model: PreTrainedModel, loader: DataLoader) -> Predictions:
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    logits, labels, indices = [], [], []
    try:
        for batch in loader:
            out = model(
                input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
            )
            logits.append(out.logits.float().cpu())
            labels.append(batch["labels"])
            indices.append(batch["index"])
    finally:
        model.train(was_training)
    if not logits:
        return Predictions(np.zeros((0, 0), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64))
    return Predictions(torch.cat(logits).numpy(), torch.cat(labels).numpy(), torch.cat(indices).numpy())


def classification_metrics(labels: np.ndarray, preds: np.ndarray) -> dict[str, float]:
    """Accuracy and macro-F1 over the classes that occur in labels or predictions."""
    if len(labels) == 0:
        return {"accuracy": float("nan"), "f1_macro": float("nan"), "n": 0}
    return {
        "accuracy": float(accuracy_score(labels, preds)),
        "f1_macro": float(f1_score(labels, preds, average="macro", zero_division=0)),
        "n": len(labels),
    }


def evaluate(model: PreTrainedModel, data, splits: Iterable[str]) -> dict[str, dict[str, float]]:
    """Metrics per split for ``model`` on an :class:`~unlearnbench.data.UnlearnDataModule`."""
    out = {}
    for split in splits:
        pred = predict(model, data.eval_loader(split))
        out[split] = classification_metrics(pred.labels, pred.preds)
    return out
