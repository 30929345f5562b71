"""unlearnbench: machine-unlearning experiments on fine-tuned language models.

The data flow of one run lives in :mod:`unlearnbench.pipeline`:
data -> original model (cached) -> method.unlearn -> evaluate -> results.json -> report.
"""

__version__ = "0.1.0"
