"""Per-row outputs of a model on a split: logits, labels, dataset indices, the pooled embedding.

A row is what the task predicts: a sample (sequence classification) or a word of a sentence (token
classification: ``indices`` repeats the sentence's dataset index for each of its words and
``positions`` holds the word's place in it). Which rows exist is the task's business
(:class:`~unlearnbench.tasks.base.Task`); this container only selects, orders and stores them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import log_softmax

from unlearnbench.io import atomic_path

log = logging.getLogger(__name__)


@dataclass
class Predictions:
    logits: np.ndarray  # (N, C) float32
    labels: np.ndarray  # (N,)
    indices: np.ndarray  # (N,) dataset indices, in the order the loader gave them (see sorted())
    embeddings: np.ndarray | None = None  # (N, d) float32; None if not asked or not available
    positions: np.ndarray | None = None  # (N,) the row's place within its sample (words of a sentence)

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def n_samples(self) -> int:
        """Samples (sentences, when rows are words) the rows cover."""
        return len(np.unique(self.indices)) if self.positions is not None else len(self)

    @property
    def preds(self) -> np.ndarray:
        return self.logits.argmax(axis=1)

    @property
    def log_probs(self) -> np.ndarray:
        """log p(c | x) = log_softmax(logits), float64."""
        return log_softmax(self.logits.astype(np.float64), axis=1)

    @property
    def probs(self) -> np.ndarray:
        return np.exp(self.log_probs)

    @property
    def losses(self) -> np.ndarray:
        """Per-row cross-entropy -log p(y | x) of the true label, in nats."""
        if len(self) == 0:
            return np.zeros(0)
        return -self.log_probs[np.arange(len(self)), self.labels]

    def sorted(self) -> Predictions:
        """The same rows, ordered by dataset index (the rows of one sample keep their order)."""
        return self.take(np.unique(self.indices))

    def take(self, indices: Sequence[int] | np.ndarray) -> Predictions:
        """The rows of these dataset indices, in this order (KeyError if one is missing); every row
        of each index, in the order they were predicted."""
        indices = np.asarray(indices, dtype=np.int64)
        rows: dict[int, list[int]] = {}
        for pos, i in enumerate(self.indices):
            rows.setdefault(int(i), []).append(pos)
        missing = [int(i) for i in indices if int(i) not in rows]
        if missing:
            raise KeyError(f"no predictions for dataset indices {missing[:10]}")
        pos = np.array([p for i in indices for p in rows[int(i)]], dtype=np.int64)
        logits = self.logits[pos] if len(pos) else self.logits[:0]
        emb = None if self.embeddings is None else self.embeddings[pos]
        where = None if self.positions is None else self.positions[pos]
        return Predictions(logits, self.labels[pos], self.indices[pos], emb, where)

    def covers(self, indices: Sequence[int] | np.ndarray) -> bool:
        return set(np.asarray(indices).tolist()) <= set(self.indices.tolist())

    @staticmethod
    def concat(parts: Sequence[Predictions]) -> Predictions:
        """Rows of all parts (empty parts skipped; embeddings kept only if every part has them)."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return empty_predictions()
        emb = where = None
        if all(p.embeddings is not None for p in parts):
            emb = np.concatenate([p.embeddings for p in parts])
        if all(p.positions is not None for p in parts):
            where = np.concatenate([p.positions for p in parts])
        return Predictions(
            np.concatenate([p.logits for p in parts]),
            np.concatenate([p.labels for p in parts]),
            np.concatenate([p.indices for p in parts]),
            emb,
            where,
        )

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> None:
        """An ``.npz`` written atomically (temp file + rename)."""
        arrays = {"logits": self.logits, "labels": self.labels, "indices": self.indices}
        if self.embeddings is not None:
            arrays["embeddings"] = self.embeddings
        if self.positions is not None:
            arrays["positions"] = self.positions
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> Predictions:
        with np.load(path, allow_pickle=False) as z:
            emb = z["embeddings"] if "embeddings" in z.files else None
            where = z["positions"] if "positions" in z.files else None
            return cls(z["logits"], z["labels"], z["indices"], emb, where)

    @classmethod
    def load_trusted(cls, path: str | Path, indices: Sequence[int] | np.ndarray) -> Predictions | None:
        """The stored outputs if the file is whole and covers exactly ``indices``; else None (and the
        file is removed), so that a damaged or partial file is recomputed, never trusted."""
        path = Path(path)
        if not path.exists():
            return None
        try:
            pred = cls.load(path)
            whole = len(pred.logits) == len(pred.labels) == len(pred.indices)
            if whole and np.array_equal(np.sort(pred.indices), np.sort(np.asarray(indices))):
                return pred
        except Exception as exc:  # zip, npz and array errors: all mean "not a whole file"
            log.warning("ignoring unreadable cached outputs %s: %s", path, exc)
        path.unlink(missing_ok=True)
        return None


def empty_predictions() -> Predictions:
    return Predictions(np.zeros((0, 0), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64))
