"""Per-sample outputs of a model on a split, from one forward pass: logits, labels, dataset indices
and the pooled embedding; their files (a cache ``.npz``, ``predictions.parquet``, ``embeddings.npz``).

Token classification: a row is a word (read at its first subword), ``indices`` repeats the
sentence's dataset index for each of its words and ``positions`` holds the word's place in it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from filelock import FileLock
from scipy.special import log_softmax
from torch.utils.data import DataLoader

from unlearnbench.io import stable_hash

# The representation the latent-space metrics read: the [CLS] state of the last encoder layer,
# what DeepCUT contrasts by default (``pooling: cls``, ``layers: [-1]``; methods/deepcut.py:pool).
# Token classification: the last layer's state of each word's first subword (DeepCUT's token anchors).
EMBEDDING = {"pooling": "cls", "layer": -1}
log = logging.getLogger(__name__)


@dataclass
class Predictions:
    logits: np.ndarray  # (N, C) float32
    labels: np.ndarray  # (N,)
    indices: np.ndarray  # (N,) dataset indices, in the order the loader gave them (see sorted())
    embeddings: np.ndarray | None = None  # (N, d) float32, EMBEDDING; None if not asked or not available
    positions: np.ndarray | None = None  # (N,) token classification: the word's position in its sentence

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def is_tokens(self) -> bool:
        return self.positions is not None

    @property
    def n_samples(self) -> int:
        """Samples (sentences, for token classification) the rows cover."""
        return len(np.unique(self.indices)) if self.is_tokens else len(self)

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
        """Per-sample cross-entropy -log p(y | x) of the true label, in nats."""
        if len(self) == 0:
            return np.zeros(0)
        return -self.log_probs[np.arange(len(self)), self.labels]

    def sorted(self) -> Predictions:
        """The same rows, ordered by dataset index (a sentence's words keep their order)."""
        return self.take(np.unique(self.indices))

    def take(self, indices: Sequence[int] | np.ndarray) -> Predictions:
        """The rows of these dataset indices, in this order (KeyError if one is missing); for token
        classification every row (word) of each index, in the order they were predicted."""
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


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temp path beside ``path`` that replaces it when the block ends without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as fh:  # on disk before it takes the name
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@torch.inference_mode()
def predict(model: torch.nn.Module, loader: DataLoader, embeddings: bool = False) -> Predictions:
    """One pass over ``loader`` in eval mode: logits and, with ``embeddings``, the EMBEDDING of every
    sample (from the same forward pass, ``output_hidden_states``; None for a model without them).
    Token classification batches (with ``word_index``) give one row per word."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    logits, labels, indices, embs, positions = [], [], [], [], []
    extra = {"output_hidden_states": True} if embeddings else {}
    try:
        for batch in loader:
            out = model(
                input_ids=batch["input_ids"].to(device),
                attention_mask=batch["attention_mask"].to(device),
                **extra,
            )
            hidden = getattr(out, "hidden_states", None) if embeddings else None
            if "word_index" in batch:
                words = batch["word_index"]
                at = words >= 0
                logits.append(out.logits.float().cpu()[at])
                labels.append(batch["labels"][at])
                indices.append(batch["index"][:, None].expand_as(words)[at])
                positions.append(words[at])
                embs.append(None if hidden is None else hidden[EMBEDDING["layer"]].float().cpu()[at])
                continue
            logits.append(out.logits.float().cpu())
            labels.append(batch["labels"])
            indices.append(batch["index"])
            embs.append(None if hidden is None else hidden[EMBEDDING["layer"]][:, 0].float().cpu())
    finally:
        model.train(was_training)
    if not logits:
        return empty_predictions()
    emb = torch.cat(embs).numpy() if embs and all(e is not None for e in embs) else None
    where = torch.cat(positions).numpy() if positions else None
    return Predictions(
        torch.cat(logits).numpy(), torch.cat(labels).numpy(), torch.cat(indices).numpy(), emb, where
    )


# ---------------------------------------------------------------------- cached outputs of a model
def outputs_path(directory: str | Path, indices: Sequence[int] | np.ndarray) -> Path:
    """Where the outputs of a cached model on these dataset indices live (inside its cache entry)."""
    key = stable_hash({"indices": sorted(np.asarray(indices).tolist()), "embedding": EMBEDDING}, 16)
    return Path(directory) / f"outputs-{key}.npz"


def cached_outputs(
    directory: str | Path, indices: Sequence[int] | np.ndarray, compute: Callable[[], Predictions]
) -> tuple[Predictions, bool]:
    """The outputs stored for ``indices`` in ``directory``, or ``compute()`` stored there once (file
    lock: parallel jobs compute them once). Returns them (sorted by index) and whether they were stored."""
    path = outputs_path(directory, indices)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        stored = Predictions.load_trusted(path, indices)
        if stored is not None:
            return stored, True
        pred = compute().take(np.sort(np.asarray(indices, dtype=np.int64)))
        pred.save(path)
        return pred, False


def store_outputs(directory: str | Path, indices: Sequence[int] | np.ndarray, pred: Predictions) -> None:
    """Store ``pred`` restricted to ``indices`` (e.g. a run's own evaluation of a cached model)."""
    cached_outputs(directory, indices, lambda: pred)


# ---------------------------------------------------------------------- run files
def predictions_frame(outputs: Mapping[str, Predictions], sample_ids: Sequence[str]) -> pd.DataFrame:
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
                    **({"position": pred.positions.astype(np.int64)} if pred.is_tokens else {}),
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
    path: str | Path,
    samples: Mapping[str, np.ndarray],
    after: Mapping[str, Predictions],
    before: Predictions | None,
    label_names: Sequence[str],
) -> None:
    """``embeddings.npz`` for the 2-D map: for the dataset indices ``samples[split]``, ``index``,
    ``split``, ``label``, ``after`` (this run's model) and ``before`` (the original), float16."""
    splits = [s for s in samples if len(samples[s])]
    parts = [after[s].take(samples[s]) for s in splits]
    index = np.concatenate([p.indices for p in parts]) if parts else np.zeros(0, np.int64)
    arrays: dict[str, np.ndarray] = {
        "index": index.astype(np.int64),
        "split": np.array([s for s, p in zip(splits, parts, strict=True) for _ in range(len(p))], dtype=str),
        "label_names": np.array(list(label_names), dtype=str),
    }
    if parts and all(p.is_tokens for p in parts):
        arrays["position"] = np.concatenate([p.positions for p in parts]).astype(np.int64)
    arrays["label"] = np.concatenate([p.labels for p in parts]) if parts else np.zeros(0, np.int64)
    if parts and all(p.embeddings is not None for p in parts):
        arrays["after"] = np.concatenate([p.embeddings for p in parts]).astype(np.float16)
    if before is not None and before.embeddings is not None and before.covers(index):
        sampled = np.concatenate([samples[s] for s in splits]) if splits else index
        arrays["before"] = before.take(sampled).embeddings.astype(np.float16)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
