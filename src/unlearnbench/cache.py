"""The model cache: trained models (the original, the retrained reference) keyed by everything
they depend on, shared by all jobs of all sweeps, written atomically under a file lock so that
parallel jobs train each model once.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock
from transformers import PreTrainedModel

from unlearnbench.distributed import barrier, broadcast, is_main_process
from unlearnbench.io import atomic_write_json, stable_hash
from unlearnbench.models import checkpoint_files, load_saved, save_model

log = logging.getLogger(__name__)


def trusted_entry(entry: Path, key: str) -> bool:
    """Whether a cache entry is whole: meta.json (written last) parses and names this key, and the
    config and every safetensors file are complete (headers and sizes checked, no tensor loaded).
    An entry that fails is not loaded but trained again."""
    if not (entry / "meta.json").exists():
        return False
    try:
        meta = json.loads((entry / "meta.json").read_text())
        if not isinstance(meta, dict) or meta.get("key") != key:
            raise ValueError(f"meta.json names key {meta.get('key') if isinstance(meta, dict) else None}")
        checkpoint_files(entry)
    except Exception as exc:  # json, safetensors and config errors all mean "do not trust it"
        log.warning("cache entry %s is damaged (%s); training it again", entry, exc)
        return False
    return True


@dataclass
class CacheEntry:
    model: PreTrainedModel
    key: str
    path: Path
    meta: dict[str, Any]
    hit: bool  # True when this call loaded it instead of training it


class ModelCache:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def entry_dir(self, kind: str, spec: dict[str, Any]) -> tuple[str, Path]:
        key = stable_hash(spec)
        return key, self.root / "models" / f"{kind}-{key}"

    def get_or_train(
        self,
        kind: str,
        spec: dict[str, Any],
        train: Callable[[Path], tuple[PreTrainedModel, dict[str, Any]]],
    ) -> CacheEntry:
        """Load the model for ``spec``, or call ``train(work_dir)`` once and store what it returns.

        ``train`` returns the model and metadata (e.g. its wall time), which later hits read back.
        """
        key, final = self.entry_dir(kind, spec)
        main = is_main_process()
        if main:
            final.parent.mkdir(parents=True, exist_ok=True)
        # Under DDP all ranks train together, so they must agree on hit or miss; rank 0 alone holds
        # the lock (other jobs wait on it) and writes the entry.
        with FileLock(str(final) + ".lock") if main else nullcontext():
            hit = broadcast(trusted_entry(final, key) if main else None)
            if hit:
                meta = json.loads((final / "meta.json").read_text())
                log.info("cache hit: %s model %s", kind, key)
                return CacheEntry(load_saved(final), key, final, meta, hit=True)
            work_dir = None
            if main:
                if final.exists():  # a partial or damaged entry (a crash, a bad copy): trained again
                    shutil.rmtree(final)
                log.info("cache miss: training %s model %s", kind, key)
                # A fixed name (not a fresh temp dir): a training killed here left its checkpoints
                # in it, and the next attempt resumes from them (see RunContext.fit).
                work_dir = str(final.parent / f".{kind}-{key}.partial")
                Path(work_dir).mkdir(exist_ok=True)
            work = Path(broadcast(work_dir))
            try:
                model, meta = train(work)
                barrier()  # every rank is done with the work dir before it moves
                meta = {**meta, "kind": kind, "key": key, "spec": spec, "created": time.time()}
                if main:
                    save_model(model, work)
                    atomic_write_json(work / "meta.json", meta)
                    work.replace(final)
            except Exception:  # an interrupt (Ctrl-C, SIGTERM, SIGKILL) keeps the checkpoints to resume from
                if main:
                    shutil.rmtree(work, ignore_errors=True)
                raise
            barrier()  # the entry exists for every rank from here on
            return CacheEntry(model, key, final, meta, hit=False)
