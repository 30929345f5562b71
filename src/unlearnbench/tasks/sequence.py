"""Sequence classification: one label per text. Its records (:class:`TextDataset`) and its task."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import accuracy_score, f1_score
from transformers import AutoModelForSequenceClassification

from unlearnbench.errors import ConfigError, DataError
from unlearnbench.io import repeated
from unlearnbench.tasks.base import NAN, Task, Units, finish, pad, wrong_labels
from unlearnbench.tasks.predictions import Predictions


@dataclass
class TextDataset:
    """Sequence classification records: one label per text."""

    task: ClassVar[str] = "sequence_classification"
    name: str
    ids: list[str]
    texts: list[str]
    labels: np.ndarray  # int64, indices into label_names
    label_names: list[str]
    meta: dict[str, Any] = field(default_factory=dict)  # how it was built (raw size, duplicates dropped)

    def __post_init__(self) -> None:
        if not (len(self.ids) == len(self.texts) == len(self.labels)):
            raise DataError(f"dataset '{self.name}': ids, texts and labels differ in length")
        if len(set(self.ids)) != len(self.ids):
            raise DataError(f"dataset '{self.name}': sample ids are not unique: {repeated(self.ids)}")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def subset(self, keep: Sequence[int] | np.ndarray) -> TextDataset:
        keep = np.asarray(keep, dtype=np.int64)
        return TextDataset(
            self.name,
            [self.ids[i] for i in keep],
            [self.texts[i] for i in keep],
            self.labels[keep],
            self.label_names,
            dict(self.meta),
        )

    def content(self) -> list[Any]:
        """What the records hold, in order (their fingerprint hashes it)."""
        return [self.ids, self.texts, self.labels.tolist(), self.label_names]

    @classmethod
    def from_frame(
        cls, name: str, frame: pd.DataFrame, cfg: Mapping[str, Any], label_names: list[str] | None = None
    ) -> TextDataset:
        """Rows of (text, label[, id]) in the columns ``data.text_column`` / ``label_column`` /
        ``id_column``, checked record by record. ``label_names``: the loader's (a Hugging Face
        ClassLabel, whose column holds indices into it); else ``data.label_names`` or the column's values."""
        text_col, label_col, id_col = cfg["text_column"], cfg["label_column"], cfg.get("id_column")
        for key, col in (
            ("data.text_column", text_col),
            ("data.label_column", label_col),
            ("data.id_column", id_col),
        ):
            if col is not None and col not in frame.columns:
                raise ConfigError(key, col, f"the data has columns {list(frame.columns)}")
        check_records(name, frame, text_col, label_col, id_col)
        labels, label_names = label_indices(name, frame[label_col], label_col, label_names, cfg)
        ids = frame[id_col].astype(str).tolist() if id_col else [str(i) for i in range(len(frame))]
        return cls(name, ids, frame[text_col].astype(str).tolist(), labels, label_names)

    @staticmethod
    def hub_label_names(features: Mapping[str, Any], cfg: Mapping[str, Any]) -> list[str] | None:
        """The label names a Hugging Face dataset declares (a ClassLabel feature), if any."""
        feature = features.get(cfg["label_column"])
        return list(feature.names) if feature is not None and hasattr(feature, "names") else None


def _rows(mask: pd.Series, limit: int = 5) -> str:
    """The first rows (0-based, header excluded) where ``mask`` holds, e.g. ``rows [3, 17]``."""
    rows = [int(i) if isinstance(i, int | np.integer) else i for i in mask.index[mask][:limit]]
    return f"rows {rows}" + (" and more" if int(mask.sum()) > limit else "")


def _label_key(value: Any) -> str:
    """A label value as text, so that 1, 1.0 and "1" name the same label."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        value = int(value)
    return str(value)


def check_records(name: str, frame: pd.DataFrame, text_col: str, label_col: str, id_col: str | None) -> None:
    """Refuse, naming the rows (0-based, header excluded), records that no split could use:
    empty or null texts, missing labels, missing or repeated sample ids."""
    texts = frame[text_col]
    bad = texts.isna() | (texts.astype(str).str.strip() == "")
    if bad.any():
        raise DataError(
            f"dataset '{name}': {int(bad.sum())} empty or null texts in column '{text_col}' "
            f"({_rows(bad)}); every record needs a non-empty text"
        )
    missing = frame[label_col].isna()
    if missing.any():
        raise DataError(
            f"dataset '{name}': {int(missing.sum())} missing labels in column '{label_col}' "
            f"({_rows(missing)}); every record needs a label"
        )
    if id_col is not None:
        null_ids = frame[id_col].isna()
        if null_ids.any():
            raise DataError(
                f"dataset '{name}': {int(null_ids.sum())} missing sample ids in data.id_column "
                f"'{id_col}' ({_rows(null_ids)}); every record needs an id"
            )
        dup = repeated(frame[id_col].astype(str).tolist())
        if dup:
            raise DataError(
                f"dataset '{name}': sample ids repeat in data.id_column '{id_col}': {dup}; "
                "each id must name one record"
            )


def label_indices(
    name: str, raw: pd.Series, label_col: str, label_names: list[str] | None, cfg: Mapping[str, Any]
) -> tuple[np.ndarray, list[str]]:
    """The class index of every record and the label names. ``label_names`` from the loader (a
    Hugging Face ClassLabel): the column holds indices into it. Else ``data.label_names`` when set:
    the allowed labels, in class order. Else the sorted distinct values of the column."""
    if label_names is not None:
        lookup = {str(i): i for i in range(len(label_names))}
        allowed = f"class indices 0..{len(label_names) - 1} of {label_names}"
    elif cfg.get("label_names"):
        label_names = [_label_key(v) for v in cfg["label_names"]]
        if repeated(label_names):
            raise ConfigError("data.label_names", label_names, "a list of distinct labels")
        lookup = {n: i for i, n in enumerate(label_names)}
        allowed = f"data.label_names {label_names}"
    else:
        values = raw.unique().tolist()
        try:
            values = sorted(values)
        except TypeError:
            kinds = sorted({type(v).__name__ for v in values})
            raise DataError(
                f"dataset '{name}': labels in column '{label_col}' mix types {kinds}; use one type "
                "(all names or all numbers), or list them in data.label_names"
            ) from None
        label_names = [_label_key(v) for v in values]
        lookup = {n: i for i, n in enumerate(label_names)}
        allowed = ""
    keys = raw.map(_label_key)
    outside = ~keys.isin(list(lookup))
    if outside.any():
        found = sorted(set(keys[outside]))[:10]
        raise DataError(
            f"dataset '{name}': {int(outside.sum())} labels in column '{label_col}' are outside the "
            f"label set ({_rows(outside)}: {found}); allowed: {allowed}"
        )
    return keys.map(lookup).to_numpy(dtype=np.int64), list(label_names)


def classification_metrics(labels: np.ndarray, preds: np.ndarray) -> dict[str, float]:
    """Accuracy, macro-F1 and micro-F1 of one split; ``f1`` (the task's main F1) is macro-F1.

    Macro-F1 averages over the classes present in the split's labels: a prediction of another
    class counts against the true class (a false negative) but adds no class of its own, so a
    single-class forget set (whole-class forgetting) scores 2 acc / (1 + acc), not 1/k of that
    for each of k stray classes predicted.
    """
    if len(labels) == 0:
        return {"accuracy": NAN, "f1": NAN, "f1_macro": NAN, "f1_micro": NAN, "n": 0}
    present = np.unique(labels)
    macro = float(f1_score(labels, preds, labels=present, average="macro", zero_division=0))
    return {
        "accuracy": float(accuracy_score(labels, preds)),
        "f1": macro,
        "f1_macro": macro,
        "f1_micro": float(f1_score(labels, preds, average="micro", zero_division=0)),
        "n": len(labels),
    }


def class_index(data: TextDataset, value: Any, key: str = "forget.class_name") -> int:
    """The class that ``value`` (the config key ``key``) names: a label name, or its index."""
    if str(value) in data.label_names:
        return data.label_names.index(str(value))
    if str(value).isdigit() and int(value) < data.num_labels:
        return int(value)
    raise ConfigError(key, value, f"one of {data.label_names} (or its index 0..{data.num_labels - 1})")


class SequenceClassification(Task):
    name = "sequence_classification"
    record_type = TextDataset
    auto_model = AutoModelForSequenceClassification
    sample_unit = "samples"
    mia_unit = "sample"
    latent_unit = "sample"

    # ------------------------------------------------------------------ records
    def label_values(self, data: TextDataset) -> np.ndarray:
        return data.labels

    def class_members(self, data: TextDataset, indices: np.ndarray, class_name: Any) -> np.ndarray:
        return indices[data.labels[indices] == class_index(data, class_name)]

    def class_label(self, data: TextDataset, value: Any, key: str = "forget.class_name") -> str:
        return data.label_names[class_index(data, value, key)]

    def swap_classes(self, data: TextDataset, indices: np.ndarray, a: str, b: str) -> TextDataset:
        ia, ib = class_index(data, a), class_index(data, b)
        labels = data.labels.copy()
        idx = np.asarray(indices, dtype=np.int64)
        labels[idx] = np.where(
            data.labels[idx] == ia, ib, np.where(data.labels[idx] == ib, ia, data.labels[idx])
        )
        return TextDataset(data.name, data.ids, data.texts, labels, data.label_names, dict(data.meta))

    def backdoor_candidates(self, data: TextDataset, indices: np.ndarray, target: str) -> np.ndarray:
        return indices[data.labels[indices] != class_index(data, target)]

    def poison(self, data: TextDataset, indices: np.ndarray, trigger: str, target: str) -> TextDataset:
        texts, labels = list(data.texts), data.labels.copy()
        for i in np.asarray(indices, dtype=np.int64):
            texts[i] = f"{trigger} {texts[i]}"
        labels[np.asarray(indices, dtype=np.int64)] = class_index(data, target)
        return TextDataset(data.name, data.ids, texts, labels, data.label_names, dict(data.meta))

    def triggered(self, data: TextDataset, indices: np.ndarray, trigger: str) -> TextDataset:
        idx = np.asarray(indices, dtype=np.int64)
        return TextDataset(
            f"{data.name}-triggered",
            [f"{data.ids[i]}#triggered" for i in idx],
            [f"{trigger} {data.texts[i]}" for i in idx],
            data.labels[idx],
            data.label_names,
        )

    def attack_success(self, pred: Predictions, data: TextDataset, target: str) -> float:
        return float(np.mean(pred.preds == class_index(data, target))) if len(pred) else NAN

    def with_labels_of(self, pred: Predictions, data: TextDataset) -> Predictions:
        return Predictions(
            pred.logits, data.labels[pred.indices], pred.indices, pred.embeddings, pred.positions
        )

    def batch_classes(self, data: TextDataset, indices: np.ndarray) -> np.ndarray:
        return data.labels[indices]

    def held_classes(self, data: TextDataset, indices: np.ndarray) -> set[int]:
        return set(data.labels[indices].tolist())

    def sample_classes(self, data: TextDataset) -> np.ndarray:
        return data.labels

    def describe(self, data: TextDataset) -> list[str]:
        counts = np.bincount(data.labels, minlength=data.num_labels)
        lines = [f"classes ({data.num_labels}):"]
        lines += [
            f"  {name:<16} {c:>7,}  {100 * c / len(data):5.1f} %"
            for name, c in zip(data.label_names, counts, strict=True)
        ]
        return lines

    # ------------------------------------------------------------------ encoding and batches
    def encode(
        self, tokenizer: Any, data: TextDataset, max_length: int, options: Mapping[str, Any]
    ) -> dict[str, list]:
        return {"input_ids": tokenizer(data.texts, truncation=True, max_length=max_length)["input_ids"]}

    def item(self, columns: Mapping[str, list], labels: np.ndarray, j: int) -> dict[str, Any]:
        return {"input_ids": columns["input_ids"][j], "label": int(labels[j]), "index": j}

    def collate(self, items: list[dict[str, Any]], pad_token_id: int) -> dict[str, torch.Tensor]:
        batch = pad(items, pad_token_id)
        batch["labels"] = torch.tensor([it["label"] for it in items], dtype=torch.long)
        return finish(batch, items)

    # ------------------------------------------------------------------ losses
    def loss_rows(self, logits: torch.Tensor, labels: torch.Tensor, *aligned: torch.Tensor):
        return (logits, labels, *aligned)

    def units(self, batch: Mapping[str, torch.Tensor], views: int) -> Units:
        is_forget, index = batch["is_forget"].repeat(views), batch["index"].repeat(views)
        return Units(None, batch["labels"].repeat(views), index, is_forget)

    def unit_states(
        self,
        hidden: torch.Tensor,
        attention_mask: torch.Tensor,
        units: Units,
        pool: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        return pool(hidden, attention_mask)

    def fixed_wrong_labels(
        self, data: TextDataset, indices: np.ndarray, num_labels: int, seed: int
    ) -> torch.Tensor:
        index = torch.as_tensor(indices, dtype=torch.long)
        labels = torch.as_tensor(data.labels[indices], dtype=torch.long)
        table = torch.full((int(index.max()) + 1 if len(index) else 0,), -1, dtype=torch.long)
        table[index] = wrong_labels(labels, num_labels, torch.Generator().manual_seed(seed))
        return table

    def relabel(
        self,
        batch: Mapping[str, torch.Tensor],
        num_labels: int,
        seed: int,
        step: int | None,
        table: torch.Tensor | None,
    ) -> torch.Tensor:
        labels, is_forget = batch["labels"], batch["is_forget"]
        if step is None:
            assert table is not None, "fixed relabelling needs the run's table"
            targets = labels.clone()
            targets[is_forget] = table.to(labels.device)[batch["index"][is_forget]]
            assert bool((targets >= 0).all()), "a forget sample without a drawn label"
            return targets
        generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
        drawn = wrong_labels(labels.cpu(), num_labels, generator).to(labels.device)
        return torch.where(is_forget, drawn, labels)

    # ------------------------------------------------------------------ predictions and metrics
    def output_rows(self, logits, batch, states, pool):
        emb = None if states is None else pool(states, batch["attention_mask"]).float().cpu()
        return logits.float().cpu(), batch["labels"], batch["index"], emb, None

    def metrics(self, pred: Predictions, label_names: Sequence[str]) -> dict[str, float]:
        return classification_metrics(pred.labels, pred.preds)

    def kept_class_metrics(
        self, pred: Predictions, forgotten: Sequence[int], label_names: Sequence[str]
    ) -> dict[str, float] | None:
        """The rows of ``pred`` whose true class was not forgotten: after whole-class forgetting,
        the utility that is left to keep (the full test split loses the forgotten class by design)."""
        kept = pred.take(pred.indices[~np.isin(pred.labels, forgotten)])
        return self.metrics(kept, label_names)
