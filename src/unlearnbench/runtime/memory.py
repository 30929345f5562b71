"""Peak memory: of the process, and of a block of work (a fit, an unlearning step), on the CPU
(resident set size) and the GPU."""

from __future__ import annotations

import resource
import sys
from typing import Any, ClassVar

import torch

# The process's high-water mark before each reset: a reset also lowers what getrusage and a parent's
# wait4 (``/usr/bin/time -v``) report as max RSS, so the process peak is kept here (process_peak_rss_mb).
_peak_before_resets_mb = 0.0


def _vm_hwm_mb() -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def process_peak_rss_mb() -> float:
    """The peak RSS of this process since it started, resets by :class:`PeakMemory` included."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_mb = peak / 2**20 if sys.platform == "darwin" else peak / 1024.0
    return max(peak_mb, _vm_hwm_mb() or 0.0, _peak_before_resets_mb)


def _reset_rss_peak() -> bool:
    """Reset the process's resident-set high-water mark (Linux >= 4.0); False where that is not possible."""
    global _peak_before_resets_mb
    _peak_before_resets_mb = process_peak_rss_mb()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb(after_reset: bool) -> float:
    if after_reset:
        hwm = _vm_hwm_mb()
        if hwm is not None:
            return hwm
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024.0  # bytes on macOS, kB elsewhere


class PeakMemory:
    """Peak memory over a ``with`` block: the resident set size of the process and, on a GPU,
    ``torch.cuda.max_memory_allocated``. On Linux the RSS high-water mark is reset when the block
    starts (``/proc/self/clear_refs``), so the peak is the block's own (``scope: "block"``); elsewhere
    it is ``resource.getrusage`` max RSS, the process's since it started (``scope: "process"``).
    A nested block passes its peak on to the blocks around it."""

    _active: ClassVar[list[PeakMemory]] = []

    def __init__(self) -> None:
        self.rss_mb: float | None = None
        self.gpu_mb: float | None = None
        self.scope = "process"

    def __enter__(self) -> PeakMemory:
        self._reset = _reset_rss_peak()
        self.scope = "block" if self._reset else "process"
        self._inner_rss, self._inner_gpu = 0.0, 0.0
        self._gpu = torch.cuda.is_available()
        if self._gpu:
            try:
                torch.cuda.reset_peak_memory_stats()
            except RuntimeError:
                self._gpu = False
        PeakMemory._active.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        PeakMemory._active.remove(self)
        self.rss_mb = max(_peak_rss_mb(self._reset), self._inner_rss)
        if self._gpu and torch.cuda.is_initialized():
            self.gpu_mb = max(torch.cuda.max_memory_allocated() / 2**20, self._inner_gpu)
        for outer in PeakMemory._active:
            outer._inner_rss = max(outer._inner_rss, self.rss_mb)
            outer._inner_gpu = max(outer._inner_gpu, self.gpu_mb or 0.0)

    def as_dict(self) -> dict[str, Any]:
        return {"peak_rss_mb": self.rss_mb, "peak_gpu_mb": self.gpu_mb, "memory_scope": self.scope}
