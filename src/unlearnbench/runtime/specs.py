"""What a trained model depends on, spelled out: the spec that keys it in the model store.

A spec names the data it was trained on (a fingerprint of the records and the ids of the samples
it saw, their tokenization), the pretrained model and tokenizer it started from, the recipe, the
training seed, the precision and the number of processes, and whatever the procedure adds (a SISA
shard and slice). Descriptive settings (a dataset's origin, a run's evaluation, the method being
compared) are not in it, so they cannot split the store. ``version`` changes whenever the meaning
of a field changes; entries of an older version are then trained again, never misread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from unlearnbench.io import stable_hash

SPEC_VERSION = 1


@dataclass(frozen=True)
class DataSpec:
    fingerprint: str  # the records as loaded: ids, texts (or words) and labels
    task: str
    max_length: int
    label_all_subwords: bool = False


@dataclass(frozen=True)
class BaseModelSpec:
    """The pretrained starting point: a package, a hub id or path, or a random architecture."""

    source: str
    location: str | None  # embedded package and version, hub id or path; None for a random model
    tokenizer: str  # the tokenizer's name and vocabulary size (the embedding rows depend on it)
    architecture: Mapping[str, Any] | None = None  # source=random: the config fields
    init_seed: int | None = None  # source=random: the seed of the initial weights


@dataclass(frozen=True)
class ModelSpec:
    """One trained model. ``samples``: a digest of the sorted ids it was trained on (or of the
    checkpoint it was loaded from); ``detail``: what the procedure adds."""

    kind: str
    data: DataSpec
    base: BaseModelSpec
    recipe: Mapping[str, Any] | None
    samples: str
    seed: int
    precision: str
    processes: int = 1
    detail: Mapping[str, Any] = field(default_factory=dict)
    version: int = SPEC_VERSION

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def key(self) -> str:
        return stable_hash(self.as_dict())


def ids_digest(ids: Any) -> str:
    """The digest of a collection of sample ids (sorted first where it is a flat list)."""
    return stable_hash(ids, 32)
