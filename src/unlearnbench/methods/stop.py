"""Stop rules of an unlearning fit: stop before the budget runs out once the forget set looks
forgotten, checked every n steps on the forget set (and val), or on a fixed seeded sample of it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import Callback

from unlearnbench.data import UnlearnDataModule
from unlearnbench.errors import ConfigError
from unlearnbench.runtime.outputs import predict

STOP_RULES = ("none", "auto", "forget_f1_below_val", "forget_accuracy_below")
WHOLE_CLASS_STOP_ACCURACY = 0.05  # rule auto, forget classes absent from D_r, no threshold given


@dataclass(kw_only=True)
class StopParams:
    """When to stop before the budget runs out; checked on the forget (and val) set, or a sample."""

    rule: str = "none"
    every_n_steps: int = 10
    threshold: float | None = None
    # forget_f1_below_val: at most this many val samples in each check (a fixed seeded sample), so
    # that a check costs the same whatever |D|; None: the whole val set.
    val_max_samples: int | None = None
    # Both rules: at most this many forget samples in each check (a fixed seeded sample). A whole class
    # is a large forget set, and a check on all of it costs several unlearning steps. None: all of D_f.
    forget_max_samples: int | None = None

    def validate(self, prefix: str = "method.stop") -> None:
        if self.rule not in STOP_RULES:
            raise ConfigError(f"{prefix}.rule", self.rule, f"one of {', '.join(STOP_RULES)}")
        if self.every_n_steps < 1:
            raise ConfigError(f"{prefix}.every_n_steps", self.every_n_steps, "a positive integer")
        for key in ("val_max_samples", "forget_max_samples"):
            cap = getattr(self, key)
            if cap is not None and (not isinstance(cap, int) or cap < 1):
                raise ConfigError(f"{prefix}.{key}", cap, "a positive integer or null")
        if self.rule == "forget_accuracy_below" and self.threshold is None:
            raise ConfigError(f"{prefix}.threshold", None, "a forget accuracy in [0, 1] for this rule")


def resolve_stop_rule(stop: StopParams, data: UnlearnDataModule) -> StopParams:
    """``auto``: once the forget set looks like unseen data of its classes (forget F1 <= val F1);
    but when D_r lacks a forget class (whole-class forgetting) the retrained model never predicts
    that class, so: once forget accuracy <= ``threshold`` (0.05 when unset)."""
    if stop.rule != "auto":
        return stop
    if data.forgotten_classes():
        threshold = WHOLE_CLASS_STOP_ACCURACY if stop.threshold is None else stop.threshold
        return replace(stop, rule="forget_accuracy_below", threshold=threshold)
    return replace(stop, rule="forget_f1_below_val")


def _seeded_sample(split: np.ndarray, cap: int | None, seed: list[int]) -> np.ndarray | None:
    """At most ``cap`` indices of ``split``, the same at every call (None: the whole split)."""
    if cap is None or len(split) <= cap:
        return None
    return np.sort(np.random.default_rng(seed).choice(split, size=cap, replace=False))


class StopOnForgetMetric(Callback):
    """Stops training once the forget set looks forgotten (see :class:`StopParams`)."""

    def __init__(self, data: UnlearnDataModule, params: StopParams) -> None:
        self.data, self.params = data, params
        self.history: list[dict[str, float]] = []
        self.val_indices = _seeded_sample(data.splits["val"], params.val_max_samples, [data.seed, 60013])
        self.forget_indices = _seeded_sample(
            data.splits["forget"], params.forget_max_samples, [data.seed, 60017]
        )

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if trainer.global_step % self.params.every_n_steps:
            return
        # Under DDP the weights are the same on every rank: rank 0 evaluates, all ranks follow it.
        point = self._check(trainer.global_step, pl_module) if trainer.is_global_zero else None
        point = trainer.strategy.broadcast(point, src=0)
        self.history.append(point)
        pl_module.log_dict({f"stop/{k}": float(v) for k, v in point.items() if k not in ("step", "stop")})
        if point["stop"]:
            trainer.should_stop = True

    def _score(self, model, split: str, indices: np.ndarray | None) -> dict[str, float]:
        pred = predict(model, self.data.eval_loader(split, indices=indices))
        return self.data.task.metrics(pred, self.data.label_names)

    def _check(self, step: int, pl_module: L.LightningModule) -> dict[str, Any]:
        forget = self._score(pl_module.model, "forget", self.forget_indices)
        point: dict[str, Any] = {
            "step": step,
            "forget_f1": forget["f1"],
            "forget_accuracy": forget["accuracy"],
        }
        if self.params.rule == "forget_f1_below_val":
            point["val_f1"] = self._score(pl_module.model, "val", self.val_indices)["f1"]
            point["stop"] = point["forget_f1"] <= point["val_f1"]
        else:
            point["stop"] = point["forget_accuracy"] <= float(self.params.threshold)
        return point
