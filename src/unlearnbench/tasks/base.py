"""The task strategy: what differs between sequence classification (a label per text) and token
classification (a tag per word), behind one interface.

A :class:`Task` is chosen once, from ``data.task`` (:func:`unlearnbench.tasks.get_task`), and owns
every difference: the record type, tokenization and collation, which rows a loss reads, the class
sets of a split, how predictions are read from a forward pass, the metrics and the predictions
frame. Nothing outside ``unlearnbench.tasks`` branches on the task.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from unlearnbench.tasks.predictions import Predictions

IGNORE_INDEX = -100  # the label of a row no loss reads (torch's cross_entropy ignore_index)
NAN = float("nan")


def wrong_labels(
    labels: torch.Tensor, num_labels: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A label drawn uniformly from the ``num_labels - 1`` classes other than each true label.

    ``(y + k) mod C`` with k uniform in {1, ..., C-1} hits every other class with probability
    1/(C-1) and never y itself.
    """
    if num_labels < 2:
        raise ValueError(f"num_labels={num_labels}: relabelling needs at least two classes")
    offsets = torch.randint(1, num_labels, tuple(labels.shape), generator=generator)  # on the CPU
    return (labels + offsets.to(labels.device)) % num_labels


@dataclass
class Units:
    """What a representation loss contrasts in a batch of V stacked views: samples, or words.

    ``at``: where the units sit among the token states (None: one unit per sequence, pooled);
    ``labels``, ``sample`` (dataset index) and ``forget`` hold one entry per unit."""

    at: torch.Tensor | None
    labels: torch.Tensor
    sample: torch.Tensor
    forget: torch.Tensor


class Task(ABC):
    """One supervised task over tokenized text. Subclasses are stateless singletons."""

    name: ClassVar[str]
    record_type: ClassVar[type]
    auto_model: ClassVar[type]  # the transformers Auto class of the task's head
    # What a sample and a row are, in words (unlearnbench-data info; results.json: mia.unit, latent.unit).
    sample_unit: ClassVar[str]
    mia_unit: ClassVar[str]
    latent_unit: ClassVar[str]

    # ------------------------------------------------------------------ records
    @abstractmethod
    def label_values(self, data: Any) -> np.ndarray:
        """Every label the model is trained on (one per text, or one per word), for range checks."""

    @abstractmethod
    def class_members(self, data: Any, indices: np.ndarray, class_name: Any) -> np.ndarray:
        """The samples among ``indices`` that belong to class ``class_name`` (whole-class forgetting)."""

    @abstractmethod
    def batch_classes(self, data: Any, indices: np.ndarray) -> np.ndarray | list[frozenset[int]]:
        """What a class-stratified batch covers: each sample's label, or its set of tags."""

    @abstractmethod
    def held_classes(self, data: Any, indices: np.ndarray) -> set[int]:
        """The classes (or tags) that the samples ``indices`` hold."""

    def sample_classes(self, data: Any) -> np.ndarray | None:
        """Each sample's class where every sample has exactly one (what a stratified split must
        spread over train, val and test); None where a sample holds several (a sentence's tags)."""
        return None

    # ------------------------------------------------------------------ manipulations (forget designs)
    @abstractmethod
    def class_label(self, data: Any, value: Any, key: str = "forget.class_name") -> str:
        """The class (entity type, for token tasks) that a config value names, as its name; a
        ConfigError on ``key`` that lists the choices when it names none."""

    @abstractmethod
    def swap_classes(self, data: Any, indices: np.ndarray, a: str, b: str) -> Any:
        """Records where the samples ``indices`` have classes ``a`` and ``b`` exchanged (a label
        swap), the others as they are."""

    @abstractmethod
    def backdoor_candidates(self, data: Any, indices: np.ndarray, target: str) -> np.ndarray:
        """The samples among ``indices`` a backdoor can move to class ``target`` (not of it already)."""

    @abstractmethod
    def poison(self, data: Any, indices: np.ndarray, trigger: str, target: str) -> Any:
        """Records where the samples ``indices`` carry ``trigger`` (as their first word) and class
        ``target``."""

    @abstractmethod
    def triggered(self, data: Any, indices: np.ndarray, trigger: str) -> Any:
        """New records: the samples ``indices`` with ``trigger`` as their first word, labels kept."""

    @abstractmethod
    def attack_success(self, pred: Predictions, data: Any, target: str) -> float:
        """On triggered samples, the share moved to ``target``: samples predicted as the class, or
        (token tasks) entity words of another type predicted with a tag of the target type."""

    @abstractmethod
    def with_labels_of(self, pred: Predictions, data: Any) -> Predictions:
        """``pred`` with the labels of the records ``data`` (e.g. the true labels before a swap)."""

    def outside_label(self, data: Any) -> int | None:
        """The label that marks "no entity" (a token tag O), None where every label is a class."""
        return None

    @abstractmethod
    def describe(self, data: Any) -> list[str]:
        """Lines for ``unlearnbench-data info``: classes (or tags, entities) with their counts."""

    # ------------------------------------------------------------------ encoding and batches
    @abstractmethod
    def encode(
        self, tokenizer: Any, data: Any, max_length: int, options: Mapping[str, Any]
    ) -> dict[str, list]:
        """Token ids (and per-token columns) of every sample: ``{"input_ids": [...], ...}``."""

    def encoding_key(self, data: Any, options: Mapping[str, Any]) -> str:
        """What, besides the texts and the tokenizer, the encoding depends on (part of its cache key)."""
        return ""

    def subword_lengths(self, tokenizer: Any, data: Any) -> np.ndarray:
        """Subword tokens per sample, untruncated."""
        enc = tokenizer(data.texts, truncation=False)["input_ids"]
        return np.array([len(x) for x in enc])

    @abstractmethod
    def item(self, columns: Mapping[str, list], labels: np.ndarray, j: int) -> dict[str, Any]:
        """Sample ``j`` as the loaders hand it to :meth:`collate`."""

    @abstractmethod
    def collate(self, items: list[dict[str, Any]], pad_token_id: int) -> dict[str, torch.Tensor]:
        """A padded batch: input_ids, attention_mask, labels, index (and the task's own tensors)."""

    # ------------------------------------------------------------------ losses
    @abstractmethod
    def loss_rows(
        self, logits: torch.Tensor, labels: torch.Tensor, *aligned: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """The rows a per-row loss reads: (rows of ``logits``, their targets, the same rows of each
        ``aligned`` tensor of the logits' layout, e.g. a reference model's logits)."""

    def masked_ce(self, logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the rows of the samples in ``mask``; 0 with a zero gradient when
        there are none."""
        if not bool(mask.any()):
            return logits.sum() * 0.0
        rows, targets = self.loss_rows(logits[mask], labels[mask])
        if targets.numel() == 0:
            return logits.sum() * 0.0
        return torch.nn.functional.cross_entropy(rows, targets)

    @abstractmethod
    def units(self, batch: Mapping[str, torch.Tensor], views: int) -> Units:
        """The units of a representation loss over ``views`` stacked copies of ``batch``."""

    @abstractmethod
    def unit_states(
        self,
        hidden: torch.Tensor,
        attention_mask: torch.Tensor,
        units: Units,
        pool: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        """One state per unit from a layer's token states: ``pool`` of each sequence, or each unit's token."""

    @abstractmethod
    def fixed_wrong_labels(
        self, data: Any, indices: np.ndarray, num_labels: int, seed: int
    ) -> torch.Tensor | None:
        """A wrong label per sample of ``indices`` drawn once for a whole run (a lookup table by
        dataset index), or None where the task draws them per sample at each step."""

    @abstractmethod
    def relabel(
        self,
        batch: Mapping[str, torch.Tensor],
        num_labels: int,
        seed: int,
        step: int | None,
        table: torch.Tensor | None,
    ) -> torch.Tensor:
        """The batch's targets with a wrong label for every labelled row of its forget samples.
        ``step`` None: the draws of the run (``table`` where the task has one); else fresh draws
        seeded by (seed, step)."""

    # ------------------------------------------------------------------ predictions and metrics
    @abstractmethod
    def output_rows(
        self,
        logits: torch.Tensor,
        batch: Mapping[str, torch.Tensor],
        states: torch.Tensor | None,
        pool: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """From one forward pass: the predicted rows' (logits, labels, dataset indices, embeddings,
        positions); ``states`` is the last layer's token states (None: no embeddings asked), and
        ``pool`` makes one state of a sequence's (the run's pooling), where a row is a sequence."""

    @abstractmethod
    def metrics(self, pred: Predictions, label_names: Sequence[str]) -> dict[str, float]:
        """The scores of one split; ``f1`` is the task's main F1."""

    def kept_class_metrics(
        self, pred: Predictions, forgotten: Sequence[int], label_names: Sequence[str]
    ) -> dict[str, float] | None:
        """Scores on the samples of the classes that were kept (whole-class forgetting), or None
        where the task has no such notion."""
        return None

    def align(self, model: Predictions, reference: Predictions) -> tuple[Predictions, Predictions]:
        """``model``'s rows and ``reference``'s rows of the same samples, in the same order."""
        return model, reference.take(model.indices)

    def per_sample(self, pred: Predictions, scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Per-row scores as per-sample scores (membership is a sample's)."""
        return scores

    def frame_columns(self, pred: Predictions) -> dict[str, np.ndarray]:
        """The task's own columns of predictions.parquet and embeddings.npz (e.g. a word's position)."""
        return {}


def pad(items: list[dict[str, Any]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """input_ids padded to the longest in the batch (dynamic padding) and the attention mask."""
    width = max(len(it["input_ids"]) for it in items)
    ids = torch.full((len(items), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, it in enumerate(items):
        n = len(it["input_ids"])
        ids[row, :n] = torch.as_tensor(it["input_ids"], dtype=torch.long)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask}


def finish(batch: dict[str, torch.Tensor], items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """The dataset indices and, for paired forget/retain batches, which samples are forget samples."""
    batch["index"] = torch.tensor([it["index"] for it in items], dtype=torch.long)
    if "is_forget" in items[0]:
        batch["is_forget"] = torch.tensor([it["is_forget"] for it in items], dtype=torch.bool)
    return batch
