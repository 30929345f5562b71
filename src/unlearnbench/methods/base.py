"""What a method is, and the method registry.

Every method is a class with a ``Params`` dataclass (its config schema: unknown keys and wrong
types are refused before anything trains) and a ``run(ctx, params)`` that turns the run's original
model into an :class:`~unlearnbench.runtime.UnlearnOutcome`. Two kinds:

- :class:`Procedure`: a method that does not train in the usual way (``original``, ``retrain``,
  ``sisa``): it only defines ``run``.
- :class:`UnlearningMethod`: a LightningModule fitted from the original model on a loader it
  builds, with optional stop rules (:mod:`.stop`); the common case, a loss over paired forget /
  retain batches, is :class:`~unlearnbench.methods.paired.PairedLossMethod`.

``methods/<name>.py`` holds the class (registered under its config name), ``conf/method/<name>.yaml``
its defaults and its ``_target_``; a method of a user's own needs only the YAML and the class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig
from torch.utils.data import DataLoader
from transformers import PreTrainedModel

from unlearnbench.data import UnlearnDataModule
from unlearnbench.methods.stop import StopOnForgetMetric, StopParams, resolve_stop_rule
from unlearnbench.registry import Registry
from unlearnbench.runtime import RunContext, TrainingModule, TrainParams, UnlearnOutcome, parse_params

# The built-in methods by config name (``method.name``); ``@register(name)`` lists a class here.
METHODS = Registry("method", "method.name", sort_choices=True)
register = METHODS.register


def get_method(name: str) -> type[Method]:
    return METHODS.lookup(name)


@dataclass(kw_only=True)
class MethodParams:
    """What every method's config holds: its name (what results.json reports)."""

    name: str


class Method:
    """The interface the pipeline calls: parse the ``method`` config, check the data, run."""

    name: ClassVar[str]
    Params: ClassVar[type] = MethodParams

    @classmethod
    def parse_params(cls, cfg: Mapping[str, Any] | DictConfig) -> Any:
        """Check the ``method`` config against ``Params``: key names, types, ranges."""
        return parse_params(cls.Params, cfg, "method")

    @classmethod
    def check_data(cls, params: Any, data: UnlearnDataModule) -> None:
        """Refuse, before any training, a forget/retain split this method cannot work with."""

    @classmethod
    def run(cls, ctx: RunContext, params: Any) -> UnlearnOutcome:
        raise NotImplementedError


class Procedure(Method):
    """A method that does not train in the usual way: it defines :meth:`run` and nothing else."""


@dataclass(kw_only=True)
class TrainedParams(TrainParams, MethodParams):
    """The knobs of a method that trains: the optimisation (lr, epochs, ...) and when to stop."""

    stop: StopParams = field(default_factory=StopParams)

    def validate(self, prefix: str) -> None:
        TrainParams.validate(self, prefix)
        self.stop.validate(f"{prefix}.stop")


class UnlearningMethod(Method, TrainingModule):
    """A method that fits the original model on a loader it builds (:meth:`train_loader`) with its
    own ``training_step``. ``run`` is the whole timed unlearning step: build the module from theta_0,
    fit it, return its model."""

    Params: ClassVar[type] = TrainedParams

    def __init__(self, model: PreTrainedModel, params: TrainedParams, data: UnlearnDataModule) -> None:
        TrainingModule.__init__(self, model, params)
        self.data, self.task, self.num_labels = data, data.task, data.num_labels

    def train_loader(self, seed: int) -> DataLoader:
        raise NotImplementedError

    def callbacks(self) -> list[Callback]:
        stop = resolve_stop_rule(self.params.stop, self.data)
        if stop.rule == "none":
            return []
        self.stopper = StopOnForgetMetric(self.data, stop)
        return [self.stopper]

    def info(self) -> dict[str, Any]:
        """Method-specific facts for results.json (``method_info``)."""
        stopper = getattr(self, "stopper", None)
        return {"stop_checks": stopper.history} if stopper else {}

    @classmethod
    def run(cls, ctx: RunContext, params: TrainedParams) -> UnlearnOutcome:
        return cls(ctx.original().model, params, ctx.data).fit(ctx)

    def fit(self, ctx: RunContext) -> UnlearnOutcome:
        loader = self.train_loader(ctx.unlearn_seed)
        stats = ctx.fit(self, loader, callbacks=self.callbacks(), seed=ctx.unlearn_seed)
        return UnlearnOutcome(self.model, stats, self.info())
