"""The shared base of every unlearning method, its config schema, and the method registry.

A method is a LightningModule registered under its config name: ``methods/<name>.py`` holds the
class, ``conf/method/<name>.yaml`` its defaults, and its ``Params`` dataclass the schema those
defaults are checked against (unknown keys and wrong types fail before training).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch.utils.data import DataLoader
from transformers import PreTrainedModel, get_linear_schedule_with_warmup

from unlearnbench.errors import ConfigError
from unlearnbench.evaluation import predict, split_metrics
from unlearnbench.trainer import FitStats

if TYPE_CHECKING:
    from unlearnbench.data import UnlearnDataModule
    from unlearnbench.pipeline import RunContext

METHODS: dict[str, type[UnlearningMethod]] = {}
STOP_RULES = ("none", "auto", "forget_f1_below_val", "forget_accuracy_below")
# Stop-rule fields added after models were cached, with the value that behaves as before they existed:
# left out of a cache key at that value, so that the models cached earlier keep their keys.
STOP_KEYS_ADDED_LATER = {"forget_max_samples": None}
WHOLE_CLASS_STOP_ACCURACY = 0.05  # rule auto, forget classes absent from D_r, no threshold given


def register(name: str):
    def wrap(cls: type[UnlearningMethod]) -> type[UnlearningMethod]:
        if name in METHODS:
            raise RuntimeError(f"method '{name}' registered twice: {METHODS[name]} and {cls}")
        cls.name = name
        METHODS[name] = cls
        return cls

    return wrap


def get_method(name: str) -> type[UnlearningMethod]:
    if name not in METHODS:
        raise ConfigError("method.name", name, f"one of {', '.join(sorted(METHODS))}")
    return METHODS[name]


@dataclass(kw_only=True)
class StopParams:
    """When to stop before the budget runs out; checked on the forget (and val) set, or a sample."""

    rule: str = "none"
    every_n_steps: int = 10
    threshold: float | None = None
    # forget_f1_below_val: at most this many val samples in each check (a fixed seeded sample), so
    # that a check costs the same whatever |D|; None: the whole val set (docs/performance.md).
    val_max_samples: int | None = None
    # Both rules: at most this many forget samples in each check (a fixed seeded sample). A whole class
    # is a large forget set, and a check on all of it costs several unlearning steps. None: all of D_f.
    forget_max_samples: int | None = None


@dataclass(kw_only=True)
class MethodParams:
    """Optimisation knobs every trained method has. Defaults live in the YAML, not here."""

    name: str
    lr: float
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    epochs: int = 1
    max_steps: int = -1  # -1: the epoch budget alone decides
    stop: StopParams = field(default_factory=StopParams)

    def cache_spec(self) -> dict[str, Any]:
        """These parameters as they enter a cached model's key (see STOP_KEYS_ADDED_LATER)."""
        spec = asdict(self)
        for key, neutral in STOP_KEYS_ADDED_LATER.items():
            if spec["stop"].get(key, neutral) == neutral:
                spec["stop"].pop(key, None)
        return spec

    def validate(self) -> None:
        positive = {"lr": self.lr, "epochs": self.epochs}
        positive.update(
            {k: v for k, v in vars(self).items() if k.endswith("batch_size") and k != "retain_batch_size"}
        )
        for key, value in positive.items():
            if value is None or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"method.{key}", value, "a positive number")
        if not math.isfinite(self.weight_decay) or self.weight_decay < 0:
            raise ConfigError("method.weight_decay", self.weight_decay, "a number >= 0")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError("method.warmup_ratio", self.warmup_ratio, "a number in [0, 1)")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ConfigError("method.max_steps", self.max_steps, "a positive step budget, or -1 for none")
        if self.stop.rule not in STOP_RULES:
            raise ConfigError("method.stop.rule", self.stop.rule, f"one of {', '.join(STOP_RULES)}")
        if self.stop.every_n_steps < 1:
            raise ConfigError("method.stop.every_n_steps", self.stop.every_n_steps, "a positive integer")
        for key in ("val_max_samples", "forget_max_samples"):
            cap = getattr(self.stop, key)
            if cap is not None and (not isinstance(cap, int) or cap < 1):
                raise ConfigError(f"method.stop.{key}", cap, "a positive integer or null")
        if self.stop.rule == "forget_accuracy_below" and self.stop.threshold is None:
            raise ConfigError("method.stop.threshold", None, "a forget accuracy in [0, 1] for this rule")


IGNORE_INDEX = -100  # a token label no loss reads (data.datamodule.IGNORE_INDEX)


def labelled(logits: torch.Tensor, labels: torch.Tensor, *aligned: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The rows a per-sample loss reads: sequence classification's (N, C) logits as they are; token
    classification's (B, T, C) logits flattened to the labelled tokens (label != -100), with their
    labels and every ``aligned`` tensor of the same (B, T, ...) layout (e.g. a reference's logits)."""
    if logits.dim() == 2:
        return (logits, labels, *aligned)
    keep = labels != IGNORE_INDEX
    return (logits[keep], labels[keep], *(t[keep] for t in aligned))


def masked_ce(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the rows (samples) in ``mask``: over those samples' labelled tokens
    for token classification; 0 with a zero gradient when there are none."""
    if not bool(mask.any()):
        return logits.sum() * 0.0
    rows, targets = labelled(logits[mask], labels[mask])
    if targets.numel() == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(rows, targets)


def check_retain_weight(retain_weight: float, retain_batch_size: int) -> None:
    """A retain term needs retain samples; without one, the retain batch may be empty."""
    if retain_weight < 0:
        raise ConfigError("method.retain_weight", retain_weight, "a weight >= 0")
    if retain_batch_size < (1 if retain_weight > 0 else 0):
        raise ConfigError(
            "method.retain_batch_size", retain_batch_size, "a positive integer (0 only with retain_weight: 0)"
        )


@dataclass
class UnlearnOutcome:
    model: PreTrainedModel
    stats: FitStats
    info: dict[str, Any] = field(default_factory=dict)  # method-specific facts for results.json


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

    def _check(self, step: int, pl_module: L.LightningModule) -> dict[str, Any]:
        names = self.data.data.label_names
        loader = self.data.eval_loader("forget", indices=self.forget_indices)
        forget = split_metrics(predict(pl_module.model, loader), names)
        point: dict[str, Any] = {
            "step": step,
            "forget_f1": forget["f1"],
            "forget_accuracy": forget["accuracy"],
        }
        if self.params.rule == "forget_f1_below_val":
            loader = self.data.eval_loader("val", indices=self.val_indices)
            point["val_f1"] = split_metrics(predict(pl_module.model, loader), names)["f1"]
            point["stop"] = point["forget_f1"] <= point["val_f1"]
        else:
            point["stop"] = point["forget_accuracy"] <= float(self.params.threshold)
        return point


class UnlearningMethod(L.LightningModule):
    """Base class. Subclasses set ``Params``, build their loader and define ``training_step``.

    ``run`` is the whole unlearning step that is timed: by default it fits this module, starting
    from the original model, on the loader it builds.
    """

    name: ClassVar[str]
    Params: ClassVar[type[MethodParams]] = MethodParams

    def __init__(self, model: PreTrainedModel, params: MethodParams, num_labels: int) -> None:
        super().__init__()
        model.train()  # from_pretrained returns eval mode; dropout must be on while unlearning
        self.model, self.params, self.num_labels = model, params, num_labels
        self.samples_seen = 0

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Dropout draws from torch's RNG: with its state, a resumed fit continues bit for bit.
        checkpoint["torch_rng_state"] = torch.get_rng_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Starting an epoch's DataLoader iterator draws from the RNG too. Saved mid-epoch, the state
        # already includes that draw: set it at the first batch, after the resumed epoch's iterator
        # has started. Saved at an epoch's last batch: set it now, before the next epoch starts.
        state = checkpoint.get("torch_rng_state")
        progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_loop.batch_progress", {})
        if state is not None and progress.get("is_last_batch"):
            torch.set_rng_state(state)
            state = None
        self._rng_to_restore = state

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if getattr(self, "_rng_to_restore", None) is not None:
            torch.set_rng_state(self._rng_to_restore)
            self._rng_to_restore = None

    # ------------------------------------------------------------------ config
    @classmethod
    def parse_params(cls, cfg: Mapping[str, Any] | DictConfig) -> MethodParams:
        """Check the ``method`` config against ``Params``: key names, types, ranges."""
        if isinstance(cfg, DictConfig):
            cfg = OmegaConf.to_container(cfg, resolve=True)
        try:
            merged = OmegaConf.merge(OmegaConf.structured(cls.Params), cfg)
            params = OmegaConf.to_object(merged)
        except OmegaConfBaseException as exc:
            key = f"method.{exc.full_key}" if getattr(exc, "full_key", None) else "method"
            allowed = ", ".join(f.name for f in cls.Params.__dataclass_fields__.values())
            raise ConfigError(
                key, getattr(exc, "value", None), f"{exc.msg.splitlines()[0]} (keys: {allowed})"
            ) from None
        params.validate()
        return params

    # ------------------------------------------------------------------ hooks for subclasses
    @classmethod
    def check_data(cls, params: MethodParams, data: UnlearnDataModule) -> None:
        """Refuse, before any training, a forget/retain split this method cannot work with."""

    def train_loader(self, data: UnlearnDataModule, seed: int) -> DataLoader:
        raise NotImplementedError

    def callbacks(self, data: UnlearnDataModule) -> list[Callback]:
        stop = resolve_stop_rule(self.params.stop, data)
        if stop.rule == "none":
            return []
        self.stopper = StopOnForgetMetric(data, stop)
        return [self.stopper]

    def info(self) -> dict[str, Any]:
        stopper = getattr(self, "stopper", None)
        return {"stop_checks": stopper.history} if stopper else {}

    # ------------------------------------------------------------------ the unlearning step
    @classmethod
    def run(cls, ctx: RunContext, params: MethodParams) -> UnlearnOutcome:
        module = cls(ctx.original().model, params, ctx.data.num_labels)
        return module.fit(ctx)

    def fit(self, ctx: RunContext) -> UnlearnOutcome:
        loader = self.train_loader(ctx.data, ctx.seed)
        stats = ctx.fit(self, loader, self.params, callbacks=self.callbacks(ctx.data))
        return UnlearnOutcome(self.model, stats, self.info())

    # ------------------------------------------------------------------ lightning
    def count(self, batch: Mapping[str, torch.Tensor]) -> None:
        self.samples_seen += int(batch["input_ids"].shape[0])

    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            if p.requires_grad:
                (no_decay if p.ndim < 2 or "LayerNorm" in name else decay).append(p)
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.params.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.params.lr,
        )
        if self.params.warmup_ratio == 0.0:  # constant learning rate
            return optimizer
        total = max(1, int(self.trainer.estimated_stepping_batches))
        schedule = get_linear_schedule_with_warmup(optimizer, int(self.params.warmup_ratio * total), total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


@dataclass(kw_only=True)
class PairedParams(MethodParams):
    """Batch knobs of a method whose step reads a forget batch B_f and a retain batch B_r."""

    forget_batch_size: int
    retain_batch_size: int = 0
    stratified_retain: bool = True  # B_r holds min_per_class samples of every class in B_f
    min_per_class: int = 1


class PairedBatchMethod(UnlearningMethod):
    """A method whose step is one paired batch (B_f, B_r) from ``UnlearnDataModule.paired_loader``
    (one epoch = one pass over D_f), read in one forward pass and split by the ``is_forget`` mask.

    Subclasses name the terms of their loss (:meth:`loss_terms`) and say how they add up
    (:meth:`combine`); the step, its counting and its logging are shared.
    """

    Params: ClassVar[type[PairedParams]] = PairedParams

    def retain_batch_size(self) -> int:
        """|B_r|; a method without a retain term in its current setting returns 0."""
        return self.params.retain_batch_size

    def train_loader(self, data: UnlearnDataModule, seed: int) -> DataLoader:
        p = self.params
        return data.paired_loader(
            p.forget_batch_size,
            self.retain_batch_size(),
            seed,
            stratified=p.stratified_retain,
            min_per_class=p.min_per_class,
        )

    def loss_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def combine(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.count(batch)
        terms = self.loss_terms(batch)
        loss = self.combine(terms)
        size = len(batch["labels"])
        self.log_dict({f"train/{k}": v for k, v in terms.items()}, batch_size=size)
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        return loss


class FrozenReferenceMethod(PairedBatchMethod):
    """A method that also reads a frozen copy of theta_0: a teacher (SCRUB), a reference policy (NPO).

    The reference is held outside the module's submodules (in a tuple): it is not in
    ``parameters()`` so never in the optimizer, not in the state dict, and Lightning's ``.train()``
    does not reach it, so it stays in eval mode. ``on_fit_start`` moves it to the model's device.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        params: MethodParams,
        num_labels: int,
        reference: PreTrainedModel | None = None,
    ) -> None:
        super().__init__(model, params, num_labels)
        reference = copy.deepcopy(model) if reference is None else reference
        reference.eval().requires_grad_(False)
        self._frozen = (reference,)

    @property
    def reference(self) -> PreTrainedModel:
        return self._frozen[0]

    @classmethod
    def run(cls, ctx: RunContext, params: MethodParams) -> UnlearnOutcome:
        module = cls(ctx.original().model, params, ctx.data.num_labels, reference=ctx.frozen_original())
        return module.fit(ctx)

    def on_fit_start(self) -> None:
        weight = next(self.model.parameters())
        self.reference.to(device=weight.device, dtype=weight.dtype).eval()
