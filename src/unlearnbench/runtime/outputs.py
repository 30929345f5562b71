"""A model's outputs on a split from one forward pass (:func:`predict`), and the outputs of stored
models kept beside them in the store (computed once, read by every run that compares with them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock
from torch.utils.data import DataLoader

from unlearnbench.io import stable_hash
from unlearnbench.tasks import Predictions, Task, empty_predictions, pool

# The layer whose states the latent-space metrics and the embedding map read: the last, what
# DeepCUT contrasts by default (``layers: [-1]``). A sequence is one state of it, pooled as the run
# says (``model.pooling``, resolved per family: the first token of an encoder, the last of a
# decoder); token classification reads each word's first subword (DeepCUT's token anchors).
EMBEDDING_LAYER = -1


def embedding(pooling: str = "cls") -> dict[str, object]:
    """What an embedding is, as results.json records it and the stored outputs are keyed by (an
    encoder's default, ``cls``, is the key outputs were always stored under)."""
    return {"pooling": pooling, "layer": EMBEDDING_LAYER}


@torch.inference_mode()
def predict(
    model: torch.nn.Module, loader: DataLoader, embeddings: bool = False, pooling: str = "cls"
) -> Predictions:
    """One pass over ``loader`` in eval mode: logits and, with ``embeddings``, the embedding of
    every row, ``pooling`` of the last layer (from the same forward pass, ``output_hidden_states``;
    None for a model without them). The loader's task (its collator's) says what a row is: a
    sample, or a word."""
    task: Task = loader.collate_fn.task
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    parts: list[tuple] = []
    extra = {"output_hidden_states": True} if embeddings else {}
    try:
        for batch in loader:
            out = model(
                input_ids=batch["input_ids"].to(device),
                attention_mask=batch["attention_mask"].to(device),
                **extra,
            )
            hidden = getattr(out, "hidden_states", None) if embeddings else None
            states = None if hidden is None else hidden[EMBEDDING_LAYER]
            parts.append(task.output_rows(out.logits, batch, states, lambda h, m: pool(h, m, pooling)))
    finally:
        model.train(was_training)
    if not parts:
        return empty_predictions()
    logits, labels, indices, embs, positions = zip(*parts, strict=True)
    emb = torch.cat(embs).numpy() if all(e is not None for e in embs) else None
    where = torch.cat(positions).numpy() if all(p is not None for p in positions) else None
    return Predictions(
        torch.cat(logits).numpy(), torch.cat(labels).numpy(), torch.cat(indices).numpy(), emb, where
    )


# ---------------------------------------------------------------------- cached outputs of a model
def outputs_path(
    directory: str | Path,
    indices: Sequence[int] | np.ndarray,
    tag: str | None = None,
    pooling: str = "cls",
) -> Path:
    """Where the outputs of a stored model on these dataset indices live (inside its store entry),
    their embeddings pooled by ``pooling``. ``tag`` names another set of samples than the
    dataset's (a forget design's own)."""
    what: dict = {"indices": sorted(np.asarray(indices).tolist()), "embedding": embedding(pooling)}
    if tag is not None:
        what["set"] = tag
    return Path(directory) / f"outputs-{stable_hash(what, 16)}.npz"


def cached_outputs(
    directory: str | Path,
    indices: Sequence[int] | np.ndarray,
    compute: Callable[[], Predictions],
    tag: str | None = None,
    pooling: str = "cls",
) -> tuple[Predictions, bool]:
    """The outputs stored for ``indices`` in ``directory``, or ``compute()`` stored there once (file
    lock: parallel jobs compute them once). Returns them (sorted by index) and whether they were stored."""
    path = outputs_path(directory, indices, tag, pooling)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        stored = Predictions.load_trusted(path, indices)
        if stored is not None:
            return stored, True
        pred = compute().take(np.sort(np.asarray(indices, dtype=np.int64)))
        pred.save(path)
        return pred, False


def store_outputs(
    directory: str | Path, indices: Sequence[int] | np.ndarray, pred: Predictions, pooling: str = "cls"
) -> None:
    """Store ``pred`` restricted to ``indices`` (e.g. a run's own evaluation of a cached model)."""
    cached_outputs(directory, indices, lambda: pred, pooling=pooling)


def evaluate_splits(model: torch.nn.Module, data, splits: Sequence[str]) -> dict[str, dict[str, float]]:
    """The task's scores of ``model`` on each split of an :class:`~unlearnbench.data.UnlearnDataModule`."""
    return {s: data.task.metrics(predict(model, data.eval_loader(s)), data.label_names) for s in splits}
