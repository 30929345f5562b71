"""(f) Peak memory of the benchmark process: its resident set (every job of the sections it ran,
resets by PeakMemory included), getrusage's figure beside it, and torch's peak GPU allocation."""

from __future__ import annotations

import resource
from typing import TypedDict

import torch

from unlearnbench.runtime.memory import process_peak_rss_mb


class MemoryRecord(TypedDict):
    gpu_peak_allocated_mb: float | None  # None without CUDA
    benchmark_process_peak_rss_mb: float
    ru_maxrss_mb: float


def peak_memory() -> MemoryRecord:
    return {
        "gpu_peak_allocated_mb": torch.cuda.max_memory_allocated() / 2**20
        if torch.cuda.is_available()
        else None,
        "benchmark_process_peak_rss_mb": process_peak_rss_mb(),
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }
