"""Data: raw sources, seeded splits (train / val / test, forget / retain) and the Lightning data module."""

from unlearnbench.data.datamodule import UnlearnDataModule
from unlearnbench.data.sources import TextDataset, load_source
from unlearnbench.data.splits import Splits, make_splits, select_forget

__all__ = ["Splits", "TextDataset", "UnlearnDataModule", "load_source", "make_splits", "select_forget"]
