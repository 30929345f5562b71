"""The Lightning data module: one dataset loaded, split and tokenized (cached on disk), and the
loaders each phase needs: shuffled training batches, length-sorted evaluation batches, and paired
forget/retain batches. The task (``data.task``) is chosen here, once, and decides how samples
are encoded and batched.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from unlearnbench.data.loaders import (
    Collator,
    ForgetRetainBatchSampler,
    PairedDataset,
    ResumableLoader,
    TokenizedSubset,
)
from unlearnbench.data.sources import load_source
from unlearnbench.data.splits import DataPlan, Splits, plan_data
from unlearnbench.data.tokenize import encode_cached
from unlearnbench.distributed import process_info
from unlearnbench.errors import ConfigError
from unlearnbench.io import stable_hash
from unlearnbench.tasks import Dataset, Task, get_task


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
        self.task: Task = get_task(data_cfg.get("task"))
        self.max_length = int(data_cfg.get("max_length", 128))
        self.label_all_subwords = data_cfg.get("label_all_subwords", False)
        if not isinstance(self.label_all_subwords, bool):
            raise ConfigError("data.label_all_subwords", self.label_all_subwords, "true or false")
        self.records: Dataset | None = None  # as the original is trained on them
        self.plan: DataPlan | None = None
        self.splits: Splits | None = None
        self.columns: dict[str, list[np.ndarray]] = {}
        self.probe_columns: dict[str, list[np.ndarray]] = {}
        if tokenizer.pad_token_id is None:  # padding with some other id would tell the model it is text
            raise ConfigError(
                "model.tokenizer",
                getattr(tokenizer, "name_or_path", None),
                "a tokenizer with a pad token (unlearnbench.models.load_tokenizer sets one if it lacks it)",
            )
        self.collate = Collator(self.task, tokenizer.pad_token_id)
        self._fingerprint: str | None = None
        # forget=memorized: the score of every training sample and how it was made (set by the pipeline)
        self.memorization: tuple[np.ndarray, dict[str, Any]] | None = None

    # ------------------------------------------------------------------ setup
    def setup(self, stage: str | None = None) -> None:
        if self.records is not None:
            return
        clean = load_source({**self.data_cfg, "cache_dir": str(self.cache_dir)})
        self.plan = plan_data(clean, self.data_cfg, self.forget_cfg, self.seed)
        self.records, self.splits = self.plan.records, self.plan.splits
        self.columns = self._encode(self.records)
        if self.plan.probe is not None:
            self.probe_columns = self._encode(self.plan.probe)

    def _encode(self, records: Dataset) -> dict[str, list[np.ndarray]]:
        options = {"label_all_subwords": self.label_all_subwords}
        encoded = encode_cached(self.task, self.tokenizer, records, self.max_length, options, self.cache_dir)
        return {k: [np.asarray(row, dtype=np.int64) for row in v] for k, v in encoded.items()}

    @property
    def needs_forget_scores(self) -> bool:
        """The forget design picks D_f by a score per training sample, not given yet."""
        return self.plan is not None and self.plan.needs_scores

    def resolve_forget(self, scores: np.ndarray) -> None:
        """D_f and D_r from one score per training sample (in the order of :attr:`train_indices`)."""
        assert self.plan is not None, "call setup() first"
        self.splits = self.plan.resolve(scores)

    @property
    def train_indices(self) -> np.ndarray:
        """The training split, known before D_f is."""
        assert self.plan is not None, "call setup() first"
        return self.plan.train

    # ------------------------------------------------------------------ a forget design's data
    @property
    def clean_records(self) -> Dataset:
        """The records as loaded, before a forget design changed any (the same as :attr:`records`
        for designs that change nothing)."""
        assert self.plan is not None, "call setup() first"
        return self.plan.clean

    @property
    def manipulated(self) -> bool:
        return self.plan is not None and self.plan.design is not None

    @property
    def design_info(self) -> dict[str, Any]:
        return self.plan.info if self.plan is not None else {}

    @property
    def probe(self) -> Dataset | None:
        return self.plan.probe if self.plan is not None else None

    def clean_view(self) -> UnlearnDataModule:
        """This data module on the clean records (same splits): what a model trained without the
        forget design's changes is trained on; itself when the design changed nothing."""
        if not self.manipulated:
            return self
        view = copy.copy(self)
        view.records, view.columns, view._fingerprint = (
            self.clean_records,
            self._encode(self.clean_records),
            None,
        )
        view.plan = dataclasses.replace(self.plan, records=self.clean_records, design=None)
        return view

    @property
    def requests(self) -> list[np.ndarray]:
        """D_f as its deletion requests arrive (a single request for most designs)."""
        assert self.plan is not None and self.plan.requests is not None, "D_f is not picked yet"
        return self.plan.requests

    def request_view(self, forget: np.ndarray, done: np.ndarray) -> UnlearnDataModule:
        """This data module for one deletion request: the samples of earlier requests (``done``) are
        gone from the training set, D_f is ``forget``, D_r the rest."""
        _, splits = self._ready()
        train = np.setdiff1d(splits.train, done)
        retain = np.setdiff1d(train, forget)
        view = copy.copy(self)
        view.splits = Splits(train, splits.val, splits.test, np.sort(forget), retain, None)
        view.plan = dataclasses.replace(self.plan, train=train, requests=[np.sort(forget)])
        return view

    def probe_loader(self, batch_size: int | None = None) -> DataLoader:
        """Length-sorted batches of the design's own evaluation set (indices into it, not the dataset)."""
        assert self.probe is not None, "this forget design has no evaluation set of its own"
        dataset = TokenizedSubset(
            self.task, self.probe_columns, self.probe.labels, np.arange(len(self.probe))
        )
        return self._sorted_loader(dataset, batch_size)

    # ------------------------------------------------------------------ accessors
    def _ready(self) -> tuple[Dataset, Splits]:
        assert self.records is not None, "call setup() first"
        assert self.splits is not None, "D_f is not picked yet (resolve_forget)"
        return self.records, self.splits

    @property
    def num_labels(self) -> int:
        assert self.records is not None, "call setup() first"
        return self.records.num_labels

    @property
    def label_names(self) -> list[str]:
        assert self.records is not None, "call setup() first"
        return list(self.records.label_names)

    def fingerprint(self) -> str:
        """A digest of the records as the original is trained on them (ids, texts or words, labels):
        what a model trained on them depends on, whatever config produced them."""
        assert self.records is not None, "call setup() first"
        if self._fingerprint is None:
            self._fingerprint = stable_hash(self.records.content(), 32)
        return self._fingerprint

    def _subset(self, indices: Sequence[int] | np.ndarray) -> TokenizedSubset:
        assert self.records is not None, "call setup() first"
        return TokenizedSubset(
            self.task, self.columns, self.records.labels, np.asarray(indices, dtype=np.int64)
        )

    def subset(self, split: str) -> TokenizedSubset:
        return self._subset(self._ready()[1][split])

    def labels(self, split: str) -> np.ndarray:
        """The sample labels of a split (token classification: each sentence's stratum)."""
        data, splits = self._ready()
        return data.labels[splits[split]]

    def forgotten_classes(self) -> list[int]:
        """The classes of the forget set that the retain set lacks (whole-class forgetting), sorted;
        empty for a random forget set or part of a class. Sample labels: strata for token tasks."""
        return sorted(set(self.labels("forget").tolist()) - set(self.labels("retain").tolist()))

    def batch_classes(self, split: str) -> np.ndarray | list[frozenset[int]]:
        """What a class-stratified batch covers: each sample's label, or the tags of each sentence."""
        data, splits = self._ready()
        return self.task.batch_classes(data, splits[split])

    def held_classes(self, split: str) -> set[int]:
        """The classes (tags, for token tasks) that the samples of a split hold."""
        data, splits = self._ready()
        return self.task.held_classes(data, splits[split])

    def sample_ids(self, split: str) -> list[str]:
        """The sample ids of a split (``train`` is known before D_f is)."""
        if split == "train":
            assert self.records is not None, "call setup() first"
            return [self.records.ids[i] for i in self.train_indices]
        data, splits = self._ready()
        return [data.ids[i] for i in splits[split]]

    # ------------------------------------------------------------------ loaders
    def train_loader(self, split: str, batch_size: int, seed: int) -> DataLoader:
        """Shuffled batches of one split; under DDP each rank reads its own share."""
        return self.index_loader(self._ready()[1][split], batch_size, seed)

    def index_loader(self, indices: Sequence[int] | np.ndarray, batch_size: int, seed: int) -> DataLoader:
        """Shuffled batches of any set of dataset indices (as :meth:`train_loader` for a split)."""
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
        return self._sorted_loader(dataset, batch_size)

    def _sorted_loader(self, dataset: TokenizedSubset, batch_size: int | None) -> DataLoader:
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
            self.batch_classes("forget"),
            self.batch_classes("retain"),
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
