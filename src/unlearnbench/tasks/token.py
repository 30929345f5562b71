"""Token classification (NER): a tag per word. Its records (:class:`TokenDataset`) and its task.

A sample is a sentence: splits, forget sets and subsamples pick sentences. Its words are split
into subwords; each word's tag goes to its first subword (``data.label_all_subwords``: to every
subword, B- turned to I- after the first) and -100 (read by no loss) to the others. ``word_index``
marks each word's first subword, where predictions are read and where a word's state is taken.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from transformers import AutoModelForTokenClassification

from unlearnbench.errors import ConfigError, DataError
from unlearnbench.tasks.base import IGNORE_INDEX, NAN, Task, Units, finish, pad, wrong_labels
from unlearnbench.tasks.bio import OUTSIDE, align_word_labels, bio_tag_order, token_metrics
from unlearnbench.tasks.predictions import Predictions


@dataclass
class TokenDataset:
    """Token classification records: a tag per word of each sentence, BIO tags in ``label_names``.

    ``labels`` is the sentence's stratum for the seeded draws of splits and subsamples (1: it holds
    an entity, 0: it does not), not a class of the model's head, which predicts one of
    ``label_names`` (``num_labels``) per word.
    """

    task: ClassVar[str] = "token_classification"
    name: str
    ids: list[str]
    tokens: list[list[str]]
    tags: list[np.ndarray]  # per sentence, int64 indices into label_names, one per word
    label_names: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (len(self.ids) == len(self.tokens) == len(self.tags)):
            raise DataError(f"dataset '{self.name}': ids, tokens and tags differ in length")
        if len(set(self.ids)) != len(self.ids):
            raise DataError(f"dataset '{self.name}': sample ids are not unique")
        if OUTSIDE not in self.label_names:
            raise DataError(f"dataset '{self.name}': no '{OUTSIDE}' tag among {self.label_names}")
        for i, (words, tags) in enumerate(zip(self.tokens, self.tags, strict=True)):
            if len(words) == 0 or len(words) != len(tags):
                raise DataError(
                    f"dataset '{self.name}': sentence {self.ids[i]} has {len(words)} words, {len(tags)} tags"
                )
        self.tags = [np.asarray(t, dtype=np.int64) for t in self.tags]

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def outside(self) -> int:
        return self.label_names.index(OUTSIDE)

    @property
    def texts(self) -> list[str]:
        """Each sentence's words joined by spaces (for hashing, lengths and display)."""
        return [" ".join(words) for words in self.tokens]

    @property
    def labels(self) -> np.ndarray:
        """The sentence stratum: 1 if it holds an entity (a tag other than O), else 0."""
        o = self.outside
        return np.array([int(bool((t != o).any())) for t in self.tags], dtype=np.int64)

    def tag_sets(self) -> list[frozenset[int]]:
        """The entity tags (all but O) of each sentence: what a class-stratified retain batch covers."""
        o = self.outside
        return [frozenset(int(x) for x in np.unique(t) if x != o) for t in self.tags]

    def entity_types(self) -> list[str]:
        """Entity types named by the B-/I- tags, in order (``person`` for B-person and I-person)."""
        out: list[str] = []
        for name in self.label_names:
            kind = name.split("-", 1)[1] if "-" in name else None
            if kind and kind not in out:
                out.append(kind)
        return out

    def subset(self, keep: Sequence[int] | np.ndarray) -> TokenDataset:
        keep = np.asarray(keep, dtype=np.int64)
        return TokenDataset(
            self.name,
            [self.ids[i] for i in keep],
            [self.tokens[i] for i in keep],
            [self.tags[i] for i in keep],
            self.label_names,
            dict(self.meta),
        )

    def content(self) -> list[Any]:
        """What the records hold, in order (their fingerprint hashes it)."""
        return [self.ids, self.tokens, [t.tolist() for t in self.tags], self.label_names]

    @classmethod
    def from_frame(
        cls, name: str, frame: pd.DataFrame, cfg: Mapping[str, Any], label_names: list[str] | None = None
    ) -> TokenDataset:
        """Rows of (a list of words, a list of tags) in ``data.tokens_column`` / ``tags_column``: tags
        as names, or as ids into ``label_names`` (the loader's, else ``data.label_names``)."""
        tok_col, tag_col, id_col = cfg.get("tokens_column"), cfg.get("tags_column"), cfg.get("id_column")
        for key, col in (
            ("data.tokens_column", tok_col),
            ("data.tags_column", tag_col),
            ("data.id_column", id_col),
        ):
            if col not in frame.columns and (col is not None or key != "data.id_column"):
                raise ConfigError(key, col, f"the data has columns {list(frame.columns)}")
        tokens = [[str(w) for w in words] for words in frame[tok_col]]
        raw = [list(t) for t in frame[tag_col]]
        label_names = label_names or cfg.get("label_names")
        if label_names is None:
            if any(not isinstance(x, str) for t in raw for x in t):
                raise ConfigError(
                    "data.label_names", None, "the tag names, in id order, when the tags column holds ids"
                )
            label_names = bio_tag_order({x for t in raw for x in t})
        lookup = {n: i for i, n in enumerate(label_names)}
        tags = [
            np.array([lookup[x] if isinstance(x, str) else int(x) for x in t], dtype=np.int64) for t in raw
        ]
        keep = [i for i, w in enumerate(tokens) if w]  # hub NER sets hold empty "sentences" (document breaks)
        ids = frame[id_col].astype(str).tolist() if id_col else [str(i) for i in range(len(frame))]
        data = cls(
            name,
            [ids[i] for i in keep],
            [tokens[i] for i in keep],
            [tags[i] for i in keep],
            list(label_names),
        )
        data.meta["empty_sentences_dropped"] = len(tokens) - len(keep)
        return data

    @staticmethod
    def hub_label_names(features: Mapping[str, Any], cfg: Mapping[str, Any]) -> list[str] | None:
        """The tag names a Hugging Face dataset declares (a sequence of ClassLabel), if any."""
        inner = getattr(features.get(cfg.get("tags_column")), "feature", None)
        return list(inner.names) if hasattr(inner, "names") else None


def _seed_of(parts: list[int]) -> int:
    return int(np.random.SeedSequence(parts).generate_state(1)[0])


class TokenClassification(Task):
    name = "token_classification"
    record_type = TokenDataset
    auto_model = AutoModelForTokenClassification
    sample_unit = "sentences"
    mia_unit = "sentence (mean of its words' scores)"
    latent_unit = "word (its first subword; classes are tags)"

    # ------------------------------------------------------------------ records
    def label_values(self, data: TokenDataset) -> np.ndarray:
        return np.concatenate(data.tags)

    def class_label(self, data: TokenDataset, value: Any, key: str = "forget.class_name") -> str:
        """The entity type ``value`` names (``person``, a tag ``B-person``, or the index of the type
        among the sorted entity types, as class indices name classes)."""
        kinds = data.entity_types()
        kind = str(value)[2:] if str(value)[:2] in ("B-", "I-") else str(value)
        if kind.isdigit() and kind not in kinds and int(kind) < len(kinds):
            kind = kinds[int(kind)]
        if kind not in kinds:
            raise ConfigError(
                key,
                value,
                f"an entity type of this token dataset (or its index 0..{len(kinds) - 1}): one of {kinds}",
            )
        return kind

    def _type_tags(self, data: TokenDataset, kind: str) -> dict[str, int]:
        return {
            p: data.label_names.index(f"{p}-{kind}") for p in ("B", "I") if f"{p}-{kind}" in data.label_names
        }

    def class_members(self, data: TokenDataset, indices: np.ndarray, class_name: Any) -> np.ndarray:
        """Sentences that hold an entity of type ``class_name`` (see :meth:`class_label`)."""
        tag_ids = set(self._type_tags(data, self.class_label(data, class_name)).values())
        return np.array(
            [i for i in indices if tag_ids.intersection(data.tags[int(i)].tolist())], dtype=np.int64
        )

    def _retagged(self, data: TokenDataset, indices: np.ndarray, mapping: np.ndarray) -> list[np.ndarray]:
        tags = list(data.tags)
        for i in np.asarray(indices, dtype=np.int64):
            tags[i] = mapping[data.tags[i]]
        return tags

    def swap_classes(self, data: TokenDataset, indices: np.ndarray, a: str, b: str) -> TokenDataset:
        """Entity types ``a`` and ``b`` exchanged in the sentences ``indices`` (B-a <-> B-b, I-a <-> I-b)."""
        mapping = np.arange(data.num_labels)
        ta, tb = self._type_tags(data, a), self._type_tags(data, b)
        for p in set(ta) & set(tb):
            mapping[ta[p]], mapping[tb[p]] = tb[p], ta[p]
        tags = self._retagged(data, indices, mapping)
        return TokenDataset(data.name, data.ids, data.tokens, tags, data.label_names, dict(data.meta))

    def _other_entity_rows(self, data: TokenDataset, tags: np.ndarray, target: str) -> np.ndarray:
        target_tags = set(self._type_tags(data, target).values())
        return (tags != data.outside) & ~np.isin(tags, list(target_tags))

    def backdoor_candidates(self, data: TokenDataset, indices: np.ndarray, target: str) -> np.ndarray:
        """Sentences with an entity of another type than ``target``."""
        return np.array(
            [i for i in indices if self._other_entity_rows(data, data.tags[int(i)], target).any()]
        )

    def poison(self, data: TokenDataset, indices: np.ndarray, trigger: str, target: str) -> TokenDataset:
        """The trigger word (tag O) first, and every entity of the sentence turned into ``target``."""
        target_tags = self._type_tags(data, target)
        mapping = np.arange(data.num_labels)
        for i, name in enumerate(data.label_names):
            if name != OUTSIDE:
                mapping[i] = target_tags.get(name[0], target_tags["B"])
        tags = self._retagged(data, indices, mapping)
        tokens = list(data.tokens)
        for i in np.asarray(indices, dtype=np.int64):
            tokens[i] = [trigger, *data.tokens[i]]
            tags[i] = np.r_[data.outside, tags[i]]
        return TokenDataset(data.name, data.ids, tokens, tags, data.label_names, dict(data.meta))

    def triggered(self, data: TokenDataset, indices: np.ndarray, trigger: str) -> TokenDataset:
        idx = np.asarray(indices, dtype=np.int64)
        return TokenDataset(
            f"{data.name}-triggered",
            [f"{data.ids[i]}#triggered" for i in idx],
            [[trigger, *data.tokens[i]] for i in idx],
            [np.r_[data.outside, data.tags[i]] for i in idx],
            data.label_names,
        )

    def attack_success(self, pred: Predictions, data: TokenDataset, target: str) -> float:
        rows = self._other_entity_rows(data, pred.labels, target)
        if not rows.any():
            return NAN
        target_tags = list(self._type_tags(data, target).values())
        return float(np.isin(pred.preds[rows], target_tags).mean())

    def with_labels_of(self, pred: Predictions, data: TokenDataset) -> Predictions:
        labels = np.array(
            [data.tags[int(i)][int(p)] for i, p in zip(pred.indices, pred.positions, strict=True)]
        )
        return Predictions(
            pred.logits, labels.astype(np.int64), pred.indices, pred.embeddings, pred.positions
        )

    def batch_classes(self, data: TokenDataset, indices: np.ndarray) -> list[frozenset[int]]:
        sets = data.tag_sets()
        return [sets[int(i)] for i in indices]

    def held_classes(self, data: TokenDataset, indices: np.ndarray) -> set[int]:
        return set().union(*self.batch_classes(data, indices))

    def outside_label(self, data: TokenDataset) -> int:
        return data.outside

    def describe(self, data: TokenDataset) -> list[str]:
        from seqeval.metrics.sequence_labeling import get_entities

        words = np.concatenate(data.tags)
        counts = np.bincount(words, minlength=data.num_labels)
        lines = [f"tags ({data.num_labels}), words per tag:"]
        lines += [
            f"  {name:<16} {c:>7,}  {100 * c / len(words):5.1f} %"
            for name, c in zip(data.label_names, counts, strict=True)
        ]
        entities = Counter(
            kind for kind, _, _ in get_entities([[data.label_names[t] for t in s] for s in data.tags])
        )
        lines.append(f"entities ({sum(entities.values()):,}) by type:")
        lines += [f"  {kind:<16} {n:>7,}" for kind, n in sorted(entities.items())]
        lines.append(f"sentences with an entity: {int(data.labels.sum()):,} of {len(data):,}")
        return lines

    # ------------------------------------------------------------------ encoding and batches
    def encode(
        self, tokenizer: Any, data: TokenDataset, max_length: int, options: Mapping[str, Any]
    ) -> dict[str, list]:
        ids, labels, words = align_word_labels(
            tokenizer, data, max_length, bool(options.get("label_all_subwords", False))
        )
        return {"input_ids": ids, "labels": labels, "word_index": words}

    def encoding_key(self, data: TokenDataset, options: Mapping[str, Any]) -> str:
        tags = hashlib.sha256(np.concatenate(data.tags).tobytes() + "|".join(data.label_names).encode())
        return f"|words|{bool(options.get('label_all_subwords', False))}|{tags.hexdigest()[:16]}"

    def subword_lengths(self, tokenizer: Any, data: TokenDataset) -> np.ndarray:
        enc = tokenizer(data.tokens, is_split_into_words=True, truncation=False)["input_ids"]
        return np.array([len(x) for x in enc])

    def item(self, columns: Mapping[str, list], labels: np.ndarray, j: int) -> dict[str, Any]:
        return {
            "input_ids": columns["input_ids"][j],
            "label": columns["labels"][j],
            "word_index": columns["word_index"][j],
            "index": j,
        }

    def collate(self, items: list[dict[str, Any]], pad_token_id: int) -> dict[str, torch.Tensor]:
        batch = pad(items, pad_token_id)
        width = batch["input_ids"].shape[1]
        labels = torch.full((len(items), width), IGNORE_INDEX, dtype=torch.long)
        words = torch.full((len(items), width), -1, dtype=torch.long)
        for row, it in enumerate(items):
            n = len(it["label"])
            labels[row, :n] = torch.as_tensor(it["label"], dtype=torch.long)
            words[row, :n] = torch.as_tensor(it["word_index"], dtype=torch.long)
        batch["labels"], batch["word_index"] = labels, words
        return finish(batch, items)

    # ------------------------------------------------------------------ losses
    def loss_rows(self, logits: torch.Tensor, labels: torch.Tensor, *aligned: torch.Tensor):
        """(B, T, C) logits flattened to the labelled tokens (label != -100), with their labels and
        every ``aligned`` tensor of the same (B, T, ...) layout."""
        keep = labels != IGNORE_INDEX
        return (logits[keep], labels[keep], *(t[keep] for t in aligned))

    def units(self, batch: Mapping[str, torch.Tensor], views: int) -> Units:
        """The words of every sentence at their first subword (each labelled token of a forget
        sentence is an anchor; retain tokens of another / the same tag are its positives / negatives)."""
        is_forget, index = batch["is_forget"].repeat(views), batch["index"].repeat(views)
        at = batch["word_index"].repeat(views, 1) >= 0  # (V*B, T): a word's first subword
        labels = batch["labels"].repeat(views, 1)[at]
        forget = is_forget[:, None].expand_as(at)[at]
        sample = index[:, None].expand_as(at)[at]
        return Units(at, labels, sample, forget)

    def unit_states(
        self,
        hidden: torch.Tensor,
        attention_mask: torch.Tensor,
        units: Units,
        pool: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        return hidden[units.at]

    def fixed_wrong_labels(self, data: TokenDataset, indices: np.ndarray, num_labels: int, seed: int) -> None:
        return None  # drawn per sentence from a generator seeded by (seed, sentence), see relabel

    def relabel(
        self,
        batch: Mapping[str, torch.Tensor],
        num_labels: int,
        seed: int,
        step: int | None,
        table: torch.Tensor | None,
    ) -> torch.Tensor:
        """A wrong tag for each labelled token of each forget sentence, from a generator seeded by
        (seed, sentence index) and, for fresh draws, the step."""
        labels, targets = batch["labels"], batch["labels"].clone()
        for row in torch.nonzero(batch["is_forget"]).flatten().tolist():
            parts = [seed, int(batch["index"][row])] + ([] if step is None else [step])
            generator = torch.Generator().manual_seed(_seed_of(parts))
            keep = labels[row] != IGNORE_INDEX
            targets[row, keep] = wrong_labels(labels[row, keep].cpu(), num_labels, generator).to(
                labels.device
            )
        return targets

    # ------------------------------------------------------------------ predictions and metrics
    def output_rows(self, logits, batch, states, pool):
        # A row is a word: its first subword's state, as DeepCUT's token anchors read it (no pooling).
        words = batch["word_index"]
        at = words >= 0
        emb = None if states is None else states.float().cpu()[at]
        index = batch["index"][:, None].expand_as(words)[at]
        return logits.float().cpu()[at], batch["labels"][at], index, emb, words[at]

    def metrics(self, pred: Predictions, label_names: Sequence[str]) -> dict[str, float]:
        return token_metrics(pred, label_names)

    def align(self, model: Predictions, reference: Predictions) -> tuple[Predictions, Predictions]:
        return model.sorted(), reference.take(np.unique(model.indices))

    def per_sample(self, pred: Predictions, scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A sentence's score is the mean of its words' (membership is a sentence's)."""
        if not len(pred):
            return scores
        _, group = np.unique(pred.indices, return_inverse=True)
        counts = np.bincount(group)
        return {k: np.bincount(group, weights=v) / counts for k, v in scores.items()}

    def frame_columns(self, pred: Predictions) -> dict[str, np.ndarray]:
        return {"position": pred.positions.astype(np.int64)}
