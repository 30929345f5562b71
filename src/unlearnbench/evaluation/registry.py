"""The evaluation's registry: every results.json section (and every file beside it) is one function,
registered with what it reads and how the report shows it.

A section declares the splits it needs (evaluated besides ``eval.splits``), whether it reads the
original model's outputs or the retrained reference's, the ``eval.<switch>`` that turns it on,
its own ``eval.*`` options, and its report columns: :func:`flatten` gives its numbers as flat
columns, :class:`Column` the ones the report's table shows. Adding a metric is one function, its
:func:`section` decorator and its test; the evaluation and the report find it here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from unlearnbench.errors import ConfigError

# A section: inputs (an unlearnbench.evaluation.inputs.EvalInputs, which itself reads the options
# defined here) -> its results.json record, or None for a file it wrote.
Compute = Callable[[Any], Any]

SPLIT_ORDER = ("forget", "retain", "val", "test", "train")
# eval.* blocks that are not a section's switch or option: eval.pool (the pools that forget quality
# reads) is checked where the pools are built (unlearnbench.pools.PoolOptions).
BLOCKS = ("pool",)


@dataclass(frozen=True)
class Column:
    """A column of the report's table: ``source`` is a column of results.csv (a flat name, mean over
    seeds), shown as ``label`` (times ``scale``, with ``digits`` decimals); ``better``: ``max`` or
    ``min`` for a column where one direction wins (marked in bold), None for a yardstick."""

    label: str
    source: str
    order: float
    scale: float = 1.0
    digits: int = 1
    better: str | None = None
    spread: bool = True  # show the std over seeds beside the mean


@dataclass(frozen=True)
class Option:
    """An ``eval.<name>`` knob of a section: its default and what it allows."""

    name: str
    default: Any
    minimum: int = 0


@dataclass(frozen=True)
class Section:
    name: str
    compute: Compute
    splits: tuple[str, ...] = ()
    original: bool = False
    reference: bool = False
    switch: str | None = None  # a bool eval.<switch>, or one of its own int options (on when > 0)
    options: tuple[Option, ...] = ()
    columns: tuple[Column, ...] = ()
    flatten: Callable[[Any], dict[str, float]] | None = None
    writes_file: bool = False  # an artifact beside results.json, not a section of it
    embeddings: bool = False  # reads the outputs' embeddings (the forward passes then return them)


SECTIONS: dict[str, Section] = {}


def section(
    name: str,
    *,
    splits: Sequence[str] = (),
    original: bool = False,
    reference: bool = False,
    switch: str | None = None,
    options: Sequence[Option] = (),
    columns: Sequence[Column] = (),
    flatten: Callable[[Any], dict[str, float]] | None = None,
    writes_file: bool = False,
    embeddings: bool = False,
):
    """Register ``compute(inputs) -> record`` as the results.json section ``name`` (or, with
    ``writes_file``, as an artifact that writes its file into the run dir and returns nothing)."""

    def wrap(compute: Compute) -> Compute:
        if name in SECTIONS:
            raise RuntimeError(f"evaluation section '{name}' registered twice")
        SECTIONS[name] = Section(
            name=name,
            compute=compute,
            splits=tuple(splits),
            original=original,
            reference=reference,
            switch=switch,
            options=tuple(options),
            columns=tuple(columns),
            flatten=flatten,
            writes_file=writes_file,
            embeddings=embeddings,
        )
        return compute

    return wrap


def flatten(name: str, record: Any) -> dict[str, float]:
    """The numbers of a results.json section as flat report columns (none if it has no flattener)."""
    entry = SECTIONS.get(name)
    if entry is None or entry.flatten is None or not isinstance(record, Mapping):
        return {}
    return entry.flatten(record)


def report_columns() -> list[Column]:
    return sorted((c for s in SECTIONS.values() for c in s.columns), key=lambda c: c.order)


@dataclass(frozen=True)
class EvalOptions:
    """The ``eval`` config block: the splits always evaluated, the batch size, each section's switch
    and each section's own options."""

    splits: tuple[str, ...]
    batch_size: int = 64
    switches: Mapping[str, bool] = field(default_factory=dict)
    values: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any] | DictConfig) -> EvalOptions:
        cfg = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
        options = {o.name: o for s in SECTIONS.values() for o in s.options}
        switches = {s.switch for s in SECTIONS.values() if s.switch and s.switch not in options}
        known = ["splits", "batch_size", *sorted(switches), *sorted(options), *BLOCKS]
        unknown = sorted(set(cfg) - set(known))
        if unknown:
            raise ConfigError(f"eval.{unknown[0]}", cfg[unknown[0]], f"a key of {known}")
        splits = list(cfg.get("splits") or [])
        if not splits or any(s not in SPLIT_ORDER for s in splits):
            raise ConfigError("eval.splits", splits, f"a non-empty list of {', '.join(SPLIT_ORDER)}")
        for key in switches:
            if not isinstance(cfg.get(key, True), bool):
                raise ConfigError(f"eval.{key}", cfg[key], "true or false")
        values = {"batch_size": cfg.get("batch_size", 64)}
        values.update({name: cfg.get(name, o.default) for name, o in options.items()})
        minimum = {"batch_size": 1, **{name: o.minimum for name, o in options.items()}}
        for key, value in values.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum[key]:
                raise ConfigError(
                    f"eval.{key}", value, "a positive integer" if minimum[key] else "an integer >= 0"
                )
        return cls(
            splits=tuple(splits),
            batch_size=values.pop("batch_size"),
            switches={key: cfg.get(key, True) for key in switches},
            values=values,
        )

    def get(self, name: str) -> Any:
        return self.values[name]

    def enabled(self) -> list[Section]:
        """The sections this evaluation computes, in their registration order."""
        return [s for s in SECTIONS.values() if self._on(s)]

    def _on(self, s: Section) -> bool:
        if s.switch is None:
            return True
        if s.switch in self.values:
            return self.values[s.switch] > 0
        return self.switches.get(s.switch, True)

    def evaluated_splits(self) -> list[str]:
        """``splits`` and those the enabled sections read."""
        needed = set(self.splits)
        for s in self.enabled():
            needed |= set(s.splits)
        return [s for s in SPLIT_ORDER if s in needed]

    def needs_original(self) -> bool:
        return any(s.original for s in self.enabled())

    def needs_reference(self) -> bool:
        return any(s.reference for s in self.enabled())

    def needs_embeddings(self) -> bool:
        return any(s.embeddings for s in self.enabled())
