"""The Lightning data module: tokenization (cached on disk), dynamic padding and the loaders each
phase needs: shuffled training batches, length-sorted evaluation batches, and paired forget/retain
batches whose retain part covers every class of the forget part.

Token classification (NER): a sample is a sentence; its words are split into subwords and each
word's tag goes to its first subword (``label_all_subwords``: to every subword, B- turned to I-
after the first), -100 (ignored by the losses) elsewhere. ``word_index`` marks the first subword
of each word, where predictions are read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from filelock import FileLock
from torch.utils.data import DataLoader, Dataset, Sampler

from unlearnbench.data.sources import Dataset as RawDataset
from unlearnbench.data.sources import TokenDataset, load_source
from unlearnbench.data.splits import Splits, make_splits
from unlearnbench.distributed import process_info
from unlearnbench.errors import ConfigError

IGNORE_INDEX = -100  # the label of a subword no loss reads (torch's cross_entropy ignore_index)


class TokenizedSubset(Dataset):
    """Samples of one split: token ids, label and the dataset index (a stable handle for the sample).

    Token classification: ``label`` is the per-subword label array (-100 where no tag is read) and
    ``word_index`` the word each first subword starts (-1 elsewhere)."""

    def __init__(
        self,
        input_ids: Sequence[np.ndarray],
        labels: np.ndarray,
        indices: np.ndarray,
        token_labels: Sequence[np.ndarray] | None = None,
        word_index: Sequence[np.ndarray] | None = None,
    ) -> None:
        self.input_ids, self.labels, self.indices = input_ids, labels, np.asarray(indices, dtype=np.int64)
        self.token_labels, self.word_index = token_labels, word_index

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        j = int(self.indices[i])
        if self.token_labels is not None:
            return {
                "input_ids": self.input_ids[j],
                "label": self.token_labels[j],
                "word_index": self.word_index[j],
                "index": j,
            }
        return {"input_ids": self.input_ids[j], "label": int(self.labels[j]), "index": j}

    def lengths(self) -> np.ndarray:
        return np.array([len(self.input_ids[int(j)]) for j in self.indices])


class PadCollator:
    """Pads a list of samples to the longest in the batch (dynamic padding); token labels with -100."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(it["input_ids"]) for it in items)
        ids = torch.full((len(items), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for row, it in enumerate(items):
            n = len(it["input_ids"])
            ids[row, :n] = torch.as_tensor(it["input_ids"], dtype=torch.long)
            mask[row, :n] = 1
        batch = {"input_ids": ids, "attention_mask": mask}
        if "word_index" in items[0]:
            labels = torch.full((len(items), width), IGNORE_INDEX, dtype=torch.long)
            words = torch.full((len(items), width), -1, dtype=torch.long)
            for row, it in enumerate(items):
                n = len(it["label"])
                labels[row, :n] = torch.as_tensor(it["label"], dtype=torch.long)
                words[row, :n] = torch.as_tensor(it["word_index"], dtype=torch.long)
            batch["labels"], batch["word_index"] = labels, words
        else:
            batch["labels"] = torch.tensor([it["label"] for it in items], dtype=torch.long)
        batch["index"] = torch.tensor([it["index"] for it in items], dtype=torch.long)
        if "is_forget" in items[0]:
            batch["is_forget"] = torch.tensor([it["is_forget"] for it in items], dtype=torch.bool)
        return batch


class PairedDataset(Dataset):
    """Forget samples at positions [0, F), retain samples after; items say which they are."""

    def __init__(self, forget: TokenizedSubset, retain: TokenizedSubset) -> None:
        self.forget, self.retain = forget, retain

    def __len__(self) -> int:
        return len(self.forget) + len(self.retain)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if i < len(self.forget):
            return {**self.forget[i], "is_forget": True}
        return {**self.retain[i - len(self.forget)], "is_forget": False}


class ForgetRetainBatchSampler(Sampler[list[int]]):
    """One step = a forget batch B_f plus a retain batch B_r, as positions in a :class:`PairedDataset`.

    One epoch passes once over the forget set. With ``stratified``, B_r first takes
    ``min_per_class`` samples of every class present in B_f (so a forget anchor always has
    same-class retain samples), then fills up at random. Under DDP each rank passes over its own
    share of the forget set (batch sizes are per rank) and all ranks take the same number of steps.

    A sample may hold several classes (token classification: the entity tags of a sentence); then
    ``forget_labels`` / ``retain_labels`` are sequences of sets, and B_r takes retain sentences
    until every tag of B_f is held by ``min_per_class`` of them (where D_r has it).
    """

    def __init__(
        self,
        forget_labels: np.ndarray,
        retain_labels: np.ndarray,
        forget_batch_size: int,
        retain_batch_size: int,
        stratified: bool = True,
        min_per_class: int = 1,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if forget_batch_size < 1:
            raise ConfigError("method.forget_batch_size", forget_batch_size, "a positive integer")
        if retain_batch_size < 0:
            raise ConfigError("method.retain_batch_size", retain_batch_size, "an integer >= 0")
        self.multi = any(isinstance(x, set | frozenset) for x in (*forget_labels[:1], *retain_labels[:1]))
        if self.multi:
            self.forget_labels, self.retain_labels = (
                _object_array(forget_labels),
                _object_array(retain_labels),
            )
        else:
            self.forget_labels, self.retain_labels = np.asarray(forget_labels), np.asarray(retain_labels)
        self.forget_batch_size, self.retain_batch_size = forget_batch_size, retain_batch_size
        self.stratified, self.min_per_class, self.seed, self.epoch = stratified, min_per_class, seed, 0
        here = process_info()
        self.rank = here.rank if rank is None else rank
        self.world_size = here.world_size if world_size is None else world_size
        if self.multi:
            holders: dict[int, list[int]] = {}
            for i, tags in enumerate(self.retain_labels):
                for c in tags:
                    holders.setdefault(int(c), []).append(i)
            self.by_class = {c: np.asarray(v, dtype=np.int64) for c, v in sorted(holders.items())}
        else:
            self.by_class = {
                c: np.flatnonzero(self.retain_labels == c) for c in np.unique(self.retain_labels)
            }

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _plan(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch, 104729])
        order = rng.permutation(len(self.forget_labels))
        if self.world_size > 1:
            # As DistributedSampler: each rank takes its own share of the forget set (wrapped around
            # to equal length, so every rank takes the same number of steps) and its own retain draws.
            order = np.resize(order, self._share() * self.world_size)[self.rank :: self.world_size]
            rng = np.random.default_rng([self.seed, self.epoch, 104729, self.rank + 1])
        offset, n_retain = len(self.forget_labels), len(self.retain_labels)
        steps = []
        for start in range(0, len(order), self.forget_batch_size):
            f_pos = order[start : start + self.forget_batch_size]
            r_pos = self._retain_batch(rng, self.forget_labels[f_pos], n_retain)
            steps.append([int(p) for p in f_pos] + [int(offset + p) for p in r_pos])
        return steps

    def _share(self) -> int:
        return -(-len(self.forget_labels) // self.world_size)

    def _retain_batch(self, rng: np.random.Generator, forget_labels: np.ndarray, n_retain: int) -> np.ndarray:
        size = min(self.retain_batch_size, n_retain)
        if size == 0:
            return np.array([], dtype=np.int64)
        chosen: list[int] = []
        if self.stratified and self.multi:
            self._cover_tags(rng, forget_labels, size, chosen)
        elif self.stratified:
            for c in np.unique(forget_labels):
                pool = self.by_class.get(c)
                if pool is None or len(pool) == 0:
                    continue
                k = min(self.min_per_class, len(pool), max(0, size - len(chosen)))
                chosen.extend(rng.choice(pool, size=k, replace=False).tolist())
        rest = size - len(chosen)
        if rest > 0:
            free = np.setdiff1d(np.arange(n_retain), chosen, assume_unique=False)
            chosen.extend(rng.choice(free, size=rest, replace=False).tolist())
        return np.asarray(chosen, dtype=np.int64)

    def _cover_tags(
        self, rng: np.random.Generator, forget_tags: np.ndarray, size: int, chosen: list[int]
    ) -> None:
        """Add retain samples to ``chosen`` until ``min_per_class`` of them hold each tag of B_f."""
        for c in sorted(set().union(*forget_tags)):
            pool = self.by_class.get(int(c))
            if pool is None or len(pool) == 0:
                continue
            have = sum(int(c) in self.retain_labels[p] for p in chosen)
            free = np.setdiff1d(pool, chosen)
            k = min(max(0, self.min_per_class - have), len(free), max(0, size - len(chosen)))
            if k > 0:
                chosen.extend(rng.choice(free, size=k, replace=False).tolist())

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._plan()

    def __len__(self) -> int:
        return -(-self._share() // self.forget_batch_size)


def _object_array(items: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def read_token_cache(path: Path, n: int) -> list[list[int]] | None:
    """The cached token ids if the file is whole and has ``n`` rows; else None (tokenized again)."""
    if not path.exists():
        return None
    try:
        column = pq.read_table(path).column("input_ids").to_pylist()
    except Exception:  # a damaged parquet file raises arrow errors of several types
        return None
    return column if len(column) == n else None


class ResumableLoader(DataLoader):
    """A training loader whose place in the epoch is part of a Lightning checkpoint: a fit resumed
    mid-epoch skips the batches it had already trained on (its sampler gives the same order again,
    being seeded by the epoch), so it sees the same batches as a fit that was never interrupted."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._taken, self._skip = 0, 0

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        skip, self._skip, self._taken = self._skip, 0, 0
        for batch in super().__iter__():
            self._taken += 1
            if self._taken > skip:
                yield batch

    def state_dict(self) -> dict[str, int]:
        return {"batches_taken": self._taken}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Skip this many batches of the next epoch's iteration (the resumed epoch's done part)."""
        self._skip = int(state.get("batches_taken", 0))


class UnlearnDataModule(L.LightningDataModule):
    """Loads, splits and tokenizes one dataset; hands out loaders for every split and phase."""

    def __init__(
        self,
        data_cfg: Mapping[str, Any],
        forget_cfg: Mapping[str, Any],
        tokenizer: Any,
        seed: int,
        cache_dir: str | Path,
        eval_batch_size: int = 64,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.data_cfg, self.forget_cfg, self.tokenizer = data_cfg, forget_cfg, tokenizer
        self.seed, self.cache_dir = seed, Path(cache_dir)
        self.eval_batch_size, self.num_workers = eval_batch_size, num_workers
        self.max_length = int(data_cfg.get("max_length", 128))
        self.label_all_subwords = data_cfg.get("label_all_subwords", False)
        if not isinstance(self.label_all_subwords, bool):
            raise ConfigError("data.label_all_subwords", self.label_all_subwords, "true or false")
        self.data: RawDataset | None = None
        self.splits: Splits | None = None
        self.input_ids: list[np.ndarray] = []
        self.token_labels: list[np.ndarray] | None = None  # token classification only
        self.word_index: list[np.ndarray] | None = None
        self.token_stats: dict[str, int] = {}
        self.collate = PadCollator(tokenizer.pad_token_id or 0)

    # ------------------------------------------------------------------ setup
    def setup(self, stage: str | None = None) -> None:
        if self.data is not None:
            return
        self.data = load_source({**self.data_cfg, "cache_dir": str(self.cache_dir)})
        self.splits = make_splits(self.data, self.data_cfg, self.forget_cfg, self.seed)
        if isinstance(self.data, TokenDataset):
            self.input_ids, self.token_labels, self.word_index = self._tokenize_words_cached(self.data)
        else:
            self.input_ids = self._tokenize_cached(self.data)

    def _cache_path(self, data: RawDataset, extra: str) -> Path:
        digest = hashlib.sha256()
        for text in data.texts:
            digest.update(text.encode("utf-8", "replace") + b"\0")
        digest.update(
            f"{self.tokenizer.name_or_path}|{len(self.tokenizer)}|{self.max_length}{extra}".encode()
        )
        path = self.cache_dir / "tokens" / f"{data.name}-{digest.hexdigest()[:16]}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _tokenize_cached(self, data: RawDataset) -> list[np.ndarray]:
        path = self._cache_path(data, "")
        with FileLock(str(path) + ".lock"):
            column = read_token_cache(path, len(data))
            if column is None:
                enc = self.tokenizer(data.texts, truncation=True, max_length=self.max_length)["input_ids"]
                tmp = path.with_suffix(".tmp")
                pq.write_table(pa.table({"input_ids": pa.array(enc, type=pa.list_(pa.int32()))}), tmp)
                tmp.replace(path)
                column = enc
        return [np.asarray(ids, dtype=np.int64) for ids in column]

    def _tokenize_words_cached(self, data: TokenDataset) -> tuple[list[np.ndarray], ...]:
        """Subword ids, aligned subword labels and word starts of every sentence (cached as parquet)."""
        tags = hashlib.sha256(np.concatenate(data.tags).tobytes() + "|".join(data.label_names).encode())
        path = self._cache_path(data, f"|words|{self.label_all_subwords}|{tags.hexdigest()[:16]}")
        with FileLock(str(path) + ".lock"):
            if not path.exists():
                ids, labels, words = align_word_labels(
                    self.tokenizer, data, self.max_length, self.label_all_subwords
                )
                tmp = path.with_suffix(".tmp")
                ints = pa.list_(pa.int32())
                table = pa.table(
                    {
                        "input_ids": pa.array(ids, type=ints),
                        "labels": pa.array(labels, type=ints),
                        "word_index": pa.array(words, type=ints),
                    }
                )
                pq.write_table(table, tmp)
                tmp.replace(path)
        table = pq.read_table(path)
        out = tuple(
            [np.asarray(row, dtype=np.int64) for row in table.column(c).to_pylist()]
            for c in ("input_ids", "labels", "word_index")
        )
        kept = sum(int((w >= 0).sum()) for w in out[2])
        total = sum(len(t) for t in data.tags)
        self.token_stats = {"words": total, "words_read": kept, "words_lost": total - kept}
        return out

    # ------------------------------------------------------------------ accessors
    @property
    def num_labels(self) -> int:
        assert self.data is not None, "call setup() first"
        return self.data.num_labels

    @property
    def task(self) -> str:
        assert self.data is not None, "call setup() first"
        return self.data.task

    @property
    def is_token_task(self) -> bool:
        return self.task == "token_classification"

    def _subset(self, indices: Sequence[int] | np.ndarray) -> TokenizedSubset:
        assert self.data is not None, "call setup() first"
        return TokenizedSubset(
            self.input_ids,
            self.data.labels,
            np.asarray(indices, dtype=np.int64),
            self.token_labels,
            self.word_index,
        )

    def subset(self, split: str) -> TokenizedSubset:
        assert self.splits is not None, "call setup() first"
        return self._subset(self.splits[split])

    def labels(self, split: str) -> np.ndarray:
        """The sample labels of a split (token classification: each sentence's stratum, see
        :class:`~unlearnbench.data.sources.TokenDataset`)."""
        assert self.data is not None and self.splits is not None
        return self.data.labels[self.splits[split]]

    def forgotten_classes(self) -> list[int]:
        """The classes of the forget set that the retain set lacks (whole-class forgetting), sorted;
        empty for a random forget set or part of a class. Sample labels: strata for token tasks."""
        return sorted(set(self.labels("forget").tolist()) - set(self.labels("retain").tolist()))

    def sample_classes(self, split: str) -> np.ndarray | list[frozenset[int]]:
        """What a class-stratified batch covers: each sample's label, or the entity tags of each sentence."""
        assert self.data is not None and self.splits is not None
        if isinstance(self.data, TokenDataset):
            sets = self.data.tag_sets()
            return [sets[int(i)] for i in self.splits[split]]
        return self.labels(split)

    def sample_ids(self, split: str) -> list[str]:
        assert self.data is not None and self.splits is not None
        return [self.data.ids[i] for i in self.splits[split]]

    # ------------------------------------------------------------------ loaders
    def train_loader(self, split: str, batch_size: int, seed: int) -> DataLoader:
        """Shuffled batches of one split; under DDP each rank reads its own share."""
        assert self.splits is not None, "call setup() first"
        return self.index_loader(self.splits[split], batch_size, seed)

    def index_loader(self, indices: Sequence[int] | np.ndarray, batch_size: int, seed: int) -> DataLoader:
        """Shuffled batches of any set of dataset indices (as :meth:`train_loader` for a split)."""
        assert self.data is not None, "call setup() first"
        if batch_size < 1:
            raise ConfigError("batch_size", batch_size, "a positive integer")
        dataset = self._subset(indices)
        here = process_info()
        # Seeded by (seed, epoch), not by a generator's running state: a resumed fit gets the same
        # order for its epoch. Under DDP each rank reads its own share.
        sampler = torch.utils.data.DistributedSampler(
            dataset, num_replicas=here.world_size, rank=here.rank, shuffle=True, seed=seed
        )
        return ResumableLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=self.collate,
            num_workers=self.num_workers,
        )

    def eval_loader(
        self, split: str, batch_size: int | None = None, indices: np.ndarray | None = None
    ) -> DataLoader:
        """Batches of similar length (less padding); order does not matter for metrics.
        ``indices``: these dataset indices instead of the whole split."""
        dataset = self.subset(split) if indices is None else self._subset(indices)
        order = np.argsort(dataset.lengths(), kind="stable")
        size = batch_size or self.eval_batch_size
        batches = [order[i : i + size].tolist() for i in range(0, len(order), size)]
        return DataLoader(
            dataset, batch_sampler=batches, collate_fn=self.collate, num_workers=self.num_workers
        )

    def paired_loader(
        self,
        forget_batch_size: int,
        retain_batch_size: int,
        seed: int,
        stratified: bool = True,
        min_per_class: int = 1,
    ) -> DataLoader:
        forget, retain = self.subset("forget"), self.subset("retain")
        sampler = ForgetRetainBatchSampler(
            self.sample_classes("forget"),
            self.sample_classes("retain"),
            forget_batch_size,
            retain_batch_size,
            stratified=stratified,
            min_per_class=min_per_class,
            seed=seed,
        )
        return ResumableLoader(
            PairedDataset(forget, retain),
            batch_sampler=sampler,
            collate_fn=self.collate,
            num_workers=self.num_workers,
        )


def align_word_labels(
    tokenizer: Any, data: TokenDataset, max_length: int, label_all_subwords: bool = False
) -> tuple[list[list[int]], list[list[int]], list[list[int]]]:
    """Subword ids, subword labels and word starts of every sentence of ``data``.

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
