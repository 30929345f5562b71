"""Unlearning methods, one module each; importing this package registers all of them."""

import importlib
import pkgutil

from unlearnbench.methods.base import (
    METHODS,
    MethodParams,
    UnlearningMethod,
    UnlearnOutcome,
    get_method,
    register,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["METHODS", "MethodParams", "UnlearnOutcome", "UnlearningMethod", "get_method", "register"]
