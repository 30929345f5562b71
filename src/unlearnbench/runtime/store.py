"""The model store: trained models (the original, the retrained reference, SISA's checkpoints)
keyed by their :class:`~unlearnbench.runtime.specs.ModelSpec`, shared by all jobs of all sweeps,
written atomically under a file lock so that parallel jobs train each model once.

An entry is ``<root>/models/<kind>-<key>/``: the model (safetensors), ``meta.json`` (written last:
key, spec, what the training cost) and ``eval/`` (outputs of the model computed once). Entries
written before specs existed (under a key hashed from the config) are found by their old key and
renamed to the new one the first time they are needed (``legacy_key``).
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
from unlearnbench.io import atomic_write_json
from unlearnbench.models import checkpoint_files, load_saved, save_model
from unlearnbench.runtime.specs import ModelSpec

log = logging.getLogger(__name__)
META = "meta.json"


def trusted_entry(entry: Path, key: str) -> bool:
    """Whether a store entry is whole: meta.json (written last) parses and names this key, and the
    config and every safetensors file are complete (headers and sizes checked, no tensor loaded).
    An entry that fails is not loaded but trained again."""
    if not (entry / META).exists():
        return False
    try:
        meta = json.loads((entry / META).read_text())
        if not isinstance(meta, dict) or meta.get("key") != key:
            raise ValueError(f"meta.json names key {meta.get('key') if isinstance(meta, dict) else None}")
        checkpoint_files(entry)
    except Exception as exc:  # json, safetensors and config errors all mean "do not trust it"
        log.warning("store entry %s is damaged (%s); training it again", entry, exc)
        return False
    return True


@dataclass
class StoreEntry:
    model: PreTrainedModel
    key: str
    path: Path
    meta: dict[str, Any]
    hit: bool  # True when this call loaded it instead of training it


class ModelStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def entry_dir(self, spec: ModelSpec) -> tuple[str, Path]:
        key = spec.key()
        return key, self._dir(spec.kind, key)

    def _dir(self, kind: str, key: str) -> Path:
        return self.root / "models" / f"{kind}-{key}"

    def has(self, spec: ModelSpec) -> bool:
        key, path = self.entry_dir(spec)
        return trusted_entry(path, key)

    def meta(self, spec: ModelSpec, legacy_key: str | None = None) -> dict[str, Any] | None:
        """The entry's meta.json when the entry is whole (found under ``legacy_key`` and renamed, if
        it was stored before specs existed), else None."""
        key, path = self.entry_dir(spec)
        if not trusted_entry(path, key):
            if legacy_key is None or not is_main_process():
                return None
            with FileLock(str(path) + ".lock"):
                if not (trusted_entry(path, key) or self._adopt(spec, key, path, legacy_key)):
                    return None
        return json.loads((path / META).read_text())

    def _adopt(self, spec: ModelSpec, key: str, final: Path, legacy_key: str | None) -> bool:
        """Rename a whole entry stored under ``legacy_key`` (before specs existed) to ``key``."""
        if legacy_key is None:
            return False
        old = self._dir(spec.kind, legacy_key)
        if not trusted_entry(old, legacy_key):
            return False
        meta = json.loads((old / META).read_text())
        meta.update(key=key, spec=spec.as_dict(), adopted_from={"key": legacy_key, "spec": meta.get("spec")})
        atomic_write_json(old / META, meta)
        old.replace(final)
        log.info("store: %s model %s found under its pre-spec key %s, renamed", spec.kind, key, legacy_key)
        return True

    def get_or_train(
        self,
        spec: ModelSpec,
        train: Callable[[Path], tuple[PreTrainedModel, dict[str, Any]]],
        legacy_key: str | None = None,
    ) -> StoreEntry:
        """Load the model for ``spec``, or call ``train(work_dir)`` once and store what it returns.

        ``train`` returns the model and metadata (e.g. its wall time), which later hits read back.
        """
        kind = spec.kind
        key, final = self.entry_dir(spec)
        main = is_main_process()
        if main:
            final.parent.mkdir(parents=True, exist_ok=True)
        # Under DDP all ranks train together, so they must agree on hit or miss; rank 0 alone holds
        # the lock (other jobs wait on it) and writes the entry.
        with FileLock(str(final) + ".lock") if main else nullcontext():
            hit = broadcast(
                (trusted_entry(final, key) or self._adopt(spec, key, final, legacy_key)) if main else None
            )
            if hit:
                meta = json.loads((final / META).read_text())
                log.info("store hit: %s model %s", kind, key)
                return StoreEntry(load_saved(final), key, final, meta, hit=True)
            work_dir = None
            if main:
                if final.exists():  # a partial or damaged entry (a crash, a bad copy): trained again
                    shutil.rmtree(final)
                log.info("store miss: training %s model %s", kind, key)
                # A fixed name (not a fresh temp dir): a training killed here left its checkpoints
                # in it, and the next attempt resumes from them (see RunContext.fit).
                work_dir = str(final.parent / f".{kind}-{key}.partial")
                Path(work_dir).mkdir(exist_ok=True)
            work = Path(broadcast(work_dir))
            try:
                model, meta = train(work)
                barrier()  # every rank is done with the work dir before it moves
                meta = {**meta, "kind": kind, "key": key, "spec": spec.as_dict(), "created": time.time()}
                if main:
                    save_model(model, work)
                    atomic_write_json(work / META, meta)
                    work.replace(final)
            except Exception:  # an interrupt (Ctrl-C, SIGTERM, SIGKILL) keeps the checkpoints to resume from
                if main:
                    shutil.rmtree(work, ignore_errors=True)
                raise
            barrier()  # the entry exists for every rank from here on
            return StoreEntry(model, key, final, meta, hit=False)
