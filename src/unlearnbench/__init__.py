"""unlearnbench: machine-unlearning experiments on fine-tuned language models.

The data flow of one run lives in :mod:`unlearnbench.pipeline`:
data -> original model (stored) -> method.run -> evaluate -> results.json -> report;
the layers it rests on are drawn in docs/architecture.md.
"""

__version__ = "0.1.0"
