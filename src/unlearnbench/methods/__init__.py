"""Unlearning methods, one module each; importing this package registers all of them."""

import importlib
import pkgutil

from unlearnbench.methods.base import (
    METHODS,
    Method,
    MethodParams,
    Procedure,
    TrainedParams,
    UnlearningMethod,
    get_method,
    register,
)
from unlearnbench.methods.paired import FrozenReferenceMethod, PairedLossMethod, PairedParams

SHARED = ("base", "paired", "stop")  # the parts methods are made of, not methods
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in SHARED:
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "METHODS",
    "FrozenReferenceMethod",
    "Method",
    "MethodParams",
    "PairedLossMethod",
    "PairedParams",
    "Procedure",
    "TrainedParams",
    "UnlearningMethod",
    "get_method",
    "register",
]
