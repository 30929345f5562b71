"""Data: raw sources, seeded splits (train / val / test, forget / retain), tokenization and the
Lightning data module."""

from unlearnbench.data.datamodule import UnlearnDataModule
from unlearnbench.data.sources import load_source
from unlearnbench.data.splits import Splits, make_splits

__all__ = ["Splits", "UnlearnDataModule", "load_source", "make_splits"]
