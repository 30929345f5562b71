"""Model pools: what forget quality compares (Triantafillou et al. 2024). A pool is N models that
differ only in a seed: N retrained models (training seeds 0..N-1), or N runs of a method from the
same original (unlearning seeds 0..N-1; a procedure that has no unlearning seed, such as ``original``
or ``retrain``, varies its training seed over N..2N-1 instead, disjoint from the retrained pool).

A member keeps only what forget quality reads: its outputs on D_f, its accuracy on (a seeded sample
of) D_r and on test. Members are stored once and shared by every run and job: a retrained member
beside its model in the store, a method's member in ``<store>/pools/<pool key>/``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock
from torch import nn

from unlearnbench.data import UnlearnDataModule
from unlearnbench.io import atomic_write_json, stable_hash
from unlearnbench.runtime.outputs import predict
from unlearnbench.tasks import Predictions

MEMBER_FORMAT = 1


@dataclass
class MemberOutputs:
    forget: Predictions  # on D_f, sorted by dataset index
    retain_accuracy: float
    test_accuracy: float


@dataclass
class Pools:
    """The two pools of a run's forget quality: its method's members and the retrained ones."""

    unlearned: list[MemberOutputs]
    retrained: list[MemberOutputs]
    varies: str  # what the method's members differ in: "unlearn_seed" or "train_seed"

    @property
    def n_models(self) -> int:
        return len(self.retrained)


def retain_sample(data: UnlearnDataModule, cap: int, seed: int) -> np.ndarray:
    """At most ``cap`` retain samples (seeded, sorted): a member's retain accuracy."""
    retain = data.splits.retain
    if cap <= 0 or len(retain) <= cap:
        return retain
    return np.sort(np.random.default_rng([seed, 7963]).choice(retain, size=cap, replace=False))


def evaluation_key(data: UnlearnDataModule, retained: np.ndarray) -> str:
    """What a member's outputs were computed on: D_f, the retain sample and test (their ids)."""
    ids = data.records.ids
    parts = {
        s: [ids[int(i)] for i in idx]
        for s, idx in (("forget", data.splits.forget), ("test", data.splits.test))
    }
    parts["retain"] = [ids[int(i)] for i in retained]
    return stable_hash({"format": MEMBER_FORMAT, **parts}, 16)


def member_outputs(model: nn.Module, data: UnlearnDataModule, retained: np.ndarray) -> MemberOutputs:
    """Three forward passes: D_f (outputs kept), the retain sample and test (accuracy kept)."""
    forget = predict(model, data.eval_loader("forget")).sorted()
    accuracy = {}
    for name, loader in (
        ("retain", data.eval_loader("retain", indices=retained)),
        ("test", data.eval_loader("test")),
    ):
        accuracy[name] = data.task.metrics(predict(model, loader), data.label_names)["accuracy"]
    return MemberOutputs(forget, float(accuracy["retain"]), float(accuracy["test"]))


def cached_member(path: Path, compute: Callable[[], MemberOutputs]) -> MemberOutputs:
    """The member stored at ``path`` (npz + json), or ``compute()`` stored there once (file lock)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = path.with_suffix(".json")
    with FileLock(str(path) + ".lock"):
        if meta.exists():  # written last: its presence means the outputs beside it are whole
            try:
                facts = json.loads(meta.read_text())
                stored = Predictions.load_trusted(path, np.asarray(facts["indices"]))
                if stored is not None:
                    return MemberOutputs(
                        stored, float(facts["retain_accuracy"]), float(facts["test_accuracy"])
                    )
            except (ValueError, KeyError, OSError):
                pass
        start = time.perf_counter()
        member = compute()
        seconds = time.perf_counter() - start
        member.forget.save(path)
        atomic_write_json(
            meta,
            {
                "indices": np.unique(member.forget.indices).tolist(),
                "retain_accuracy": member.retain_accuracy,
                "test_accuracy": member.test_accuracy,
                "seconds": seconds,  # what computing the member took here (its training, if it ran here)
            },
        )
        return member
