"""Parameters from config: a dataclass schema that a config block is checked against (key names,
types, ranges) before anything trains, and the optimisation knobs every fit has."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from unlearnbench.errors import ConfigError

P = TypeVar("P")


def parse_params(schema: type[P], cfg: Mapping[str, Any] | DictConfig, prefix: str) -> P:
    """``cfg`` as an instance of the dataclass ``schema``: unknown keys, wrong types and missing
    values are refused with a ConfigError naming ``<prefix>.<key>``; then ``validate(prefix)``."""
    if isinstance(cfg, DictConfig):
        try:
            cfg = OmegaConf.to_container(cfg, resolve=True)
        except OmegaConfBaseException as exc:
            raise _as_config_error(exc, schema, prefix) from None
    cfg = {k: v for k, v in cfg.items() if k != "_target_"}
    try:
        params = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), cfg))
    except OmegaConfBaseException as exc:
        raise _as_config_error(exc, schema, prefix, cfg) from None
    validate = getattr(params, "validate", None)
    if validate is not None:
        validate(prefix)
    return params


def _as_config_error(
    exc: OmegaConfBaseException, schema: type, prefix: str, cfg: Mapping[str, Any] | None = None
) -> ConfigError:
    key = f"{prefix}.{exc.full_key}" if getattr(exc, "full_key", None) else prefix
    allowed = ", ".join(f.name for f in fields(schema))
    value = getattr(exc, "value", None)
    if value is None and cfg is not None and getattr(exc, "key", None) in cfg:
        value = cfg[exc.key]  # an unknown key: OmegaConf does not say what it held
    return ConfigError(key, value, f"{exc.msg.splitlines()[0]} (keys: {allowed})")


def positive(prefix: str, key: str, value: Any) -> None:
    if value is None or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{prefix}.{key}", value, "a positive number")


@dataclass(kw_only=True)
class TrainParams:
    """The optimisation knobs of a fit: AdamW with decoupled weight decay (none on biases and
    LayerNorm), a linear warm-up and decay when ``warmup_ratio`` > 0, else a constant rate."""

    lr: float
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    epochs: int = 1
    max_steps: int = -1  # -1: the epoch budget alone decides

    def validate(self, prefix: str) -> None:
        positive(prefix, "lr", self.lr)
        positive(prefix, "epochs", self.epochs)
        for f in fields(self):
            if f.name.endswith("batch_size") and f.name != "retain_batch_size":
                positive(prefix, f.name, getattr(self, f.name))
        if not math.isfinite(self.weight_decay) or self.weight_decay < 0:
            raise ConfigError(f"{prefix}.weight_decay", self.weight_decay, "a number >= 0")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"{prefix}.warmup_ratio", self.warmup_ratio, "a number in [0, 1)")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ConfigError(f"{prefix}.max_steps", self.max_steps, "a positive step budget, or -1 for none")


@dataclass(kw_only=True)
class Recipe(TrainParams):
    """Supervised fine-tuning of a pretrained model: the ``train.*`` block that trains the original
    model (and, by default, the retrained one), and SISA's per-slice fits."""

    batch_size: int

    def spec(self) -> dict[str, Any]:
        """The fields a trained model depends on (its store key)."""
        return {f.name: getattr(self, f.name) for f in fields(Recipe)}
