"""The Lightning data module: tokenization (cached on disk), dynamic padding and the loaders each
phase needs: shuffled training batches, length-sorted evaluation batches, and paired forget/retain
batches whose retain part covers every class of the forget part.
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

from unlearnbench.data.sources import TextDataset, load_source
from unlearnbench.data.splits import Splits, make_splits
from unlearnbench.errors import ConfigError


def dist_info() -> tuple[int, int]:
    """(rank, world size) of the current process group, (0, 1) outside DDP."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class TokenizedSubset(Dataset):
    """Samples of one split: token ids, label and the dataset index (a stable handle for the sample)."""

    def __init__(self, input_ids: Sequence[np.ndarray], labels: np.ndarray, indices: np.ndarray) -> None:
        self.input_ids, self.labels, self.indices = input_ids, labels, np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        j = int(self.indices[i])
        return {"input_ids": self.input_ids[j], "label": int(self.labels[j]), "index": j}

    def lengths(self) -> np.ndarray:
        return np.array([len(self.input_ids[int(j)]) for j in self.indices])


class PadCollator:
    """Pads a list of samples to the longest in the batch (dynamic padding)."""

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
        batch = {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": torch.tensor([it["label"] for it in items], dtype=torch.long),
            "index": torch.tensor([it["index"] for it in items], dtype=torch.long),
        }
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
    same-class retain samples), then fills up at random. Under DDP each rank takes every
    world-th step and all ranks take the same number of steps.
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
        self.forget_labels, self.retain_labels = np.asarray(forget_labels), np.asarray(retain_labels)
        self.forget_batch_size, self.retain_batch_size = forget_batch_size, retain_batch_size
        self.stratified, self.min_per_class, self.seed, self.epoch = stratified, min_per_class, seed, 0
        default_rank, default_world = dist_info()
        self.rank = default_rank if rank is None else rank
        self.world_size = default_world if world_size is None else world_size
        self.by_class = {c: np.flatnonzero(self.retain_labels == c) for c in np.unique(self.retain_labels)}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _plan(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch, 104729])
        order = rng.permutation(len(self.forget_labels))
        offset, n_retain = len(self.forget_labels), len(self.retain_labels)
        steps = []
        for start in range(0, len(order), self.forget_batch_size):
            f_pos = order[start : start + self.forget_batch_size]
            r_pos = self._retain_batch(rng, self.forget_labels[f_pos], n_retain)
            steps.append([int(p) for p in f_pos] + [int(offset + p) for p in r_pos])
        return steps

    def _retain_batch(self, rng: np.random.Generator, forget_labels: np.ndarray, n_retain: int) -> np.ndarray:
        size = min(self.retain_batch_size, n_retain)
        if size == 0:
            return np.array([], dtype=np.int64)
        chosen: list[int] = []
        if self.stratified:
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

    def __iter__(self) -> Iterator[list[int]]:
        steps = self._plan()
        total = len(self) * self.world_size  # pad by wrapping around so every rank takes the same steps
        padded = [steps[i % len(steps)] for i in range(total)]
        yield from padded[self.rank :: self.world_size]

    def __len__(self) -> int:
        steps = -(-len(self.forget_labels) // self.forget_batch_size)
        return -(-steps // self.world_size)


def read_token_cache(path: Path, n: int) -> list[list[int]] | None:
    """The cached token ids if the file is whole and has ``n`` rows; else None (tokenized again)."""
    if not path.exists():
        return None
    try:
        column = pq.read_table(path).column("input_ids").to_pylist()
    except Exception:  # a damaged parquet file raises arrow errors of several types
        return None
    return column if len(column) == n else None


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
        self.data: TextDataset | None = None
        self.splits: Splits | None = None
        self.input_ids: list[np.ndarray] = []
        self.collate = PadCollator(tokenizer.pad_token_id or 0)

    # ------------------------------------------------------------------ setup
    def setup(self, stage: str | None = None) -> None:
        if self.data is not None:
            return
        self.data = load_source(self.data_cfg)
        self.splits = make_splits(self.data, self.data_cfg, self.forget_cfg, self.seed)
        self.input_ids = self._tokenize_cached(self.data)

    def _tokenize_cached(self, data: TextDataset) -> list[np.ndarray]:
        digest = hashlib.sha256()
        for text in data.texts:
            digest.update(text.encode("utf-8", "replace") + b"\0")
        digest.update(f"{self.tokenizer.name_or_path}|{len(self.tokenizer)}|{self.max_length}".encode())
        path = self.cache_dir / "tokens" / f"{data.name}-{digest.hexdigest()[:16]}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock"):
            column = read_token_cache(path, len(data))
            if column is None:
                enc = self.tokenizer(data.texts, truncation=True, max_length=self.max_length)["input_ids"]
                tmp = path.with_suffix(".tmp")
                pq.write_table(pa.table({"input_ids": pa.array(enc, type=pa.list_(pa.int32()))}), tmp)
                tmp.replace(path)
                column = enc
        return [np.asarray(ids, dtype=np.int64) for ids in column]

    # ------------------------------------------------------------------ accessors
    @property
    def num_labels(self) -> int:
        assert self.data is not None, "call setup() first"
        return self.data.num_labels

    def subset(self, split: str) -> TokenizedSubset:
        assert self.data is not None and self.splits is not None, "call setup() first"
        return TokenizedSubset(self.input_ids, self.data.labels, self.splits[split])

    def labels(self, split: str) -> np.ndarray:
        assert self.data is not None and self.splits is not None
        return self.data.labels[self.splits[split]]

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
        dataset = TokenizedSubset(self.input_ids, self.data.labels, np.asarray(indices, dtype=np.int64))
        rank, world = dist_info()
        if world > 1:
            sampler: Sampler = torch.utils.data.DistributedSampler(
                dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed
            )
        else:
            sampler = torch.utils.data.RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=self.collate,
            num_workers=self.num_workers,
        )

    def eval_loader(self, split: str, batch_size: int | None = None) -> DataLoader:
        """Batches of similar length (less padding); order does not matter for metrics."""
        dataset = self.subset(split)
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
            self.labels("forget"),
            self.labels("retain"),
            forget_batch_size,
            retain_batch_size,
            stratified=stratified,
            min_per_class=min_per_class,
            seed=seed,
        )
        return DataLoader(
            PairedDataset(forget, retain),
            batch_sampler=sampler,
            collate_fn=self.collate,
            num_workers=self.num_workers,
        )
