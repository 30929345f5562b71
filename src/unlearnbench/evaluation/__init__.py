"""Evaluation: one forward pass per split and model, and every metric derived from its outputs.

- :mod:`.predictions`: :class:`Predictions` (logits, labels, dataset indices, pooled embeddings),
  :func:`predict`, and the files (cache ``.npz``, ``predictions.parquet``, ``embeddings.npz``)
- :mod:`.metrics`: classification scores, comparison with a reference model, membership inference,
  latent-space metrics (scikit-learn, scipy)
- :mod:`.cost`: peak memory and the cost section
- :mod:`.run`: :func:`evaluate_run`, what a run writes into results.json
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from unlearnbench.evaluation.metrics import (
    classification_metrics,
    compare_predictions,
    js_divergence,
    latent_metrics,
    mia_aucs,
    modified_entropy,
    split_metrics,
    token_metrics,
)
from unlearnbench.evaluation.predictions import Predictions, predict

__all__ = [
    "Predictions",
    "classification_metrics",
    "compare_predictions",
    "evaluate",
    "js_divergence",
    "latent_metrics",
    "mia_aucs",
    "modified_entropy",
    "predict",
    "split_metrics",
    "token_metrics",
]


def evaluate(model: torch.nn.Module, data, splits: Iterable[str]) -> dict[str, dict[str, float]]:
    """Metrics per split for ``model`` on an :class:`~unlearnbench.data.UnlearnDataModule`."""
    out = {}
    for split in splits:
        pred = predict(model, data.eval_loader(split))
        out[split] = split_metrics(pred, data.data.label_names)
    return out
