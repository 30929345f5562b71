"""BIO tags: their order in a model's head, their alignment to subwords, and entity-level scores
(seqeval) of per-word predictions."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from unlearnbench.errors import ConfigError, DataError
from unlearnbench.tasks.base import IGNORE_INDEX, NAN
from unlearnbench.tasks.predictions import Predictions

OUTSIDE = "O"  # the BIO tag of a word outside every entity


def bio_tag_order(tags: Sequence[str]) -> list[str]:
    """O first, then B-/I- of each entity type, types in alphabetical order (a stable head layout)."""
    bad = sorted({t for t in tags if t != OUTSIDE and not re.fullmatch(r"[BI]-.+", t)})
    if bad:
        raise DataError(f"tags {bad[:10]} are not BIO tags (O, B-<type>, I-<type>)")
    kinds = sorted({t[2:] for t in tags if t != OUTSIDE})
    return [OUTSIDE] + [f"{p}-{k}" for k in kinds for p in ("B", "I")]


def tag_sequences(pred: Predictions, label_names: Sequence[str]) -> tuple[list[list[str]], list[list[str]]]:
    """Gold and predicted tag names of each sentence (rows grouped by dataset index, in word order)."""
    names = np.asarray(list(label_names), dtype=object)
    order = np.lexsort((pred.positions, pred.indices))
    idx, gold, guess = pred.indices[order], names[pred.labels[order]], names[pred.preds[order]]
    cuts = np.flatnonzero(np.diff(idx)) + 1
    return [g.tolist() for g in np.split(gold, cuts)], [p.tolist() for p in np.split(guess, cuts)]


def token_metrics(pred: Predictions, label_names: Sequence[str]) -> dict[str, float]:
    """Entity-level scores of a token-classification split (seqeval, CoNLL-style BIO chunks: an
    entity counts only when its type and its span are both right), plus word accuracy.

    ``f1`` = ``f1_micro``: micro-averaged entity F1 (the main NER score); ``f1_macro``: the mean of
    the per-type entity F1 over the types present in the gold tags; ``precision`` / ``recall``:
    micro entity scores; ``accuracy``: share of words with the right tag (O included); ``n``:
    sentences; ``n_words``; ``n_entities``: gold entities. F1 is 0 when there is no gold entity
    and none predicted (seqeval's zero_division).
    """
    from seqeval.metrics import accuracy_score as seq_accuracy
    from seqeval.metrics import f1_score as seq_f1
    from seqeval.metrics import precision_score, recall_score
    from seqeval.metrics.sequence_labeling import get_entities

    if len(pred) == 0:
        keys = ("accuracy", "f1", "f1_macro", "f1_micro", "precision", "recall")
        return {**dict.fromkeys(keys, NAN), "n": 0, "n_words": 0, "n_entities": 0}
    gold, guess = tag_sequences(pred, label_names)
    types = sorted({kind for kind, _, _ in get_entities(gold)})
    micro = float(seq_f1(gold, guess, average="micro", zero_division=0))
    if types:
        per_type = seq_f1(gold, guess, average=None, zero_division=0)
        predicted_types = sorted({kind for kind, _, _ in get_entities(gold + guess)})
        by_type = dict(zip(predicted_types, np.atleast_1d(per_type), strict=True))
        macro = float(np.mean([by_type[t] for t in types]))
    else:
        macro = 0.0
    return {
        "accuracy": float(seq_accuracy(gold, guess)),
        "f1": micro,
        "f1_macro": macro,
        "f1_micro": micro,
        "precision": float(precision_score(gold, guess, average="micro", zero_division=0)),
        "recall": float(recall_score(gold, guess, average="micro", zero_division=0)),
        "n": len(gold),
        "n_words": len(pred),
        "n_entities": len(get_entities(gold)),
    }


def align_word_labels(
    tokenizer: Any, data: Any, max_length: int, label_all_subwords: bool = False
) -> tuple[list[list[int]], list[list[int]], list[list[int]]]:
    """Subword ids, subword labels and word starts of every sentence of ``data`` (token records).

    The tag of word w goes to its first subword; its other subwords get -100 (ignored), or with
    ``label_all_subwords`` the word's tag too, B-x turned into I-x. ``word_index`` holds w at the
    first subword of word w and -1 elsewhere (special tokens, continuation subwords). Words cut by
    ``max_length`` (or that the tokenizer maps to no subword) get no position.
    """
    if not getattr(tokenizer, "is_fast", True):
        raise ConfigError(
            "model.tokenizer",
            getattr(tokenizer, "name_or_path", tokenizer),
            "a fast tokenizer (word_ids() aligns tags to subwords)",
        )
    inside = {}
    for i, name in enumerate(data.label_names):
        if name.startswith("B-") and f"I-{name[2:]}" in data.label_names:
            inside[i] = data.label_names.index(f"I-{name[2:]}")
    ids_out, labels_out, words_out = [], [], []
    step = 1024
    for start in range(0, len(data), step):
        enc = tokenizer(
            data.tokens[start : start + step],
            is_split_into_words=True,
            truncation=True,
            max_length=max_length,
        )
        for row, input_ids in enumerate(enc["input_ids"]):
            tags = data.tags[start + row]
            labels, words, previous = [], [], None
            for w in enc.word_ids(row):
                if w is None:
                    labels.append(IGNORE_INDEX)
                    words.append(-1)
                elif w != previous:
                    labels.append(int(tags[w]))
                    words.append(w)
                else:
                    tag = int(tags[w])
                    labels.append(inside.get(tag, tag) if label_all_subwords else IGNORE_INDEX)
                    words.append(-1)
                previous = w
            ids_out.append(list(input_ids))
            labels_out.append(labels)
            words_out.append(words)
    return ids_out, labels_out, words_out
