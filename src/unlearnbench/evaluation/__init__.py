"""Evaluation: one forward pass per split and model, and every metric derived from its outputs, as
registered sections (:mod:`.registry`): ``metrics`` (:mod:`.scores`), ``reference``, ``mia``,
``latent``, ``cost``, and the files ``predictions.parquet`` and ``embeddings.npz`` (:mod:`.files`).
:func:`evaluate_run` computes the enabled ones."""

import importlib
import pkgutil

# Every module here but the machinery holds sections, which register themselves on import: the
# core ones first, in results.json's order, then any other (a new metric's own module) by name.
CORE = ("scores", "reference", "mia", "latent", "cost", "files")
MACHINERY = ("registry", "inputs", "run")
_others = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in CORE + MACHINERY)
for _module in (*CORE, *_others):
    importlib.import_module(f"{__name__}.{_module}")

from unlearnbench.evaluation.latent import latent_metrics  # noqa: E402
from unlearnbench.evaluation.mia import mia_aucs, modified_entropy  # noqa: E402
from unlearnbench.evaluation.reference import compare_predictions, js_divergence  # noqa: E402
from unlearnbench.evaluation.registry import SECTIONS, Column, EvalOptions, Option, section  # noqa: E402
from unlearnbench.evaluation.run import evaluate_run  # noqa: E402

__all__ = [
    "SECTIONS",
    "Column",
    "EvalOptions",
    "Option",
    "compare_predictions",
    "evaluate_run",
    "js_divergence",
    "latent_metrics",
    "mia_aucs",
    "modified_entropy",
    "section",
]
