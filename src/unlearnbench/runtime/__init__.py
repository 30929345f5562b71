"""The runtime a method runs in: the run context, fitting (with resume), the model store keyed by
explicit specs, model outputs, peak memory and experiment tracking."""

from unlearnbench.runtime.context import RunContext, UnlearnOutcome, train_recipe
from unlearnbench.runtime.fit import FitStats, TrainingModule
from unlearnbench.runtime.params import Recipe, TrainParams, parse_params
from unlearnbench.runtime.specs import ModelSpec
from unlearnbench.runtime.store import ModelStore, StoreEntry

__all__ = [
    "FitStats",
    "ModelSpec",
    "ModelStore",
    "Recipe",
    "RunContext",
    "StoreEntry",
    "TrainParams",
    "TrainingModule",
    "UnlearnOutcome",
    "parse_params",
    "train_recipe",
]
