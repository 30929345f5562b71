"""The datasets, samplers and loaders of a fit: the samples of a split, shuffled training batches
(rank-aware under DDP, resumable mid-epoch), and paired forget/retain batches whose retain part
covers every class of the forget part."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from unlearnbench.distributed import process_info
from unlearnbench.errors import ConfigError
from unlearnbench.tasks import Task


class TokenizedSubset(Dataset):
    """Samples of one split as the task hands them to its collator: token ids, label(s) and the
    dataset index (a stable handle for the sample)."""

    def __init__(
        self, task: Task, columns: Mapping[str, Sequence[Any]], labels: np.ndarray, indices: np.ndarray
    ) -> None:
        self.task, self.columns, self.labels = task, columns, labels
        self.indices = np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.task.item(self.columns, self.labels, int(self.indices[i]))

    def lengths(self) -> np.ndarray:
        ids = self.columns["input_ids"]
        return np.array([len(ids[int(j)]) for j in self.indices])


class Collator:
    """The task's collation with the tokenizer's pad id (dynamic padding to the longest in a batch)."""

    def __init__(self, task: Task, pad_token_id: int) -> None:
        self.task, self.pad_token_id = task, pad_token_id

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return self.task.collate(items, self.pad_token_id)


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
