"""Hugging Face datasets by name, with a fast, clear failure on an offline machine (a hub call
would otherwise retry for tens of seconds before it fails)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from unlearnbench.data.embedded import EMBEDDED
from unlearnbench.errors import ConfigError, DataError
from unlearnbench.io import unreachable_reason
from unlearnbench.tasks import Dataset, get_task

HUB_HOST = ("huggingface.co", 443)
HUB_PROBE_SECONDS = 2.0
# Hugging Face "packaged" builders: they read local files and need no hub.
LOCAL_BUILDERS = ("csv", "json", "parquet", "text", "arrow", "pandas", "imagefolder", "audiofolder")


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def hub_offline_reason(timeout: float = HUB_PROBE_SECONDS) -> str | None:
    """Why the Hugging Face hub cannot be reached, or None when it can.

    HF_HUB_OFFLINE / HF_DATASETS_OFFLINE set: offline by choice. Else one TCP connection to the hub,
    bounded by ``timeout`` seconds in all (name lookup included, which has no timeout of its own).
    """
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if _env_true(var):
            return f"{var}={os.environ[var]} is set"
    return unreachable_reason(*HUB_HOST, timeout=timeout)


def offline_error(hub_name: str, reason: str, cache_tried: bool, detail: str = "") -> DataError:
    """The error of a hub dataset named on an offline machine: why, and what works instead."""
    embedded = ", ".join(f"data={n}" for n in EMBEDDED)
    if cache_tried:
        where = f" and it is not in the local Hugging Face cache ({detail})" if detail else ""
    else:
        where = " (HF_DATASETS_OFFLINE=1 reads a copy from the local Hugging Face cache, if there is one)"
    return DataError(
        f"cannot load Hugging Face dataset '{hub_name}': this machine is offline ({reason}){where}. "
        f"Datasets that work offline: {embedded}, or data=local data.path=<your file>"
    )


def load_hf(cfg: Mapping[str, Any]) -> Dataset:
    """A Hugging Face dataset by name. Offline, it fails within seconds with a clear message
    (unless the dataset is in the local cache and HF_HUB_OFFLINE / HF_DATASETS_OFFLINE are set)."""
    hub_name = cfg.get("hub_name")
    if not hub_name:
        raise ConfigError("data.hub_name", hub_name, "the name of a Hugging Face dataset, e.g. ag_news")
    local = str(hub_name) in LOCAL_BUILDERS or Path(str(hub_name)).exists()
    reason = None if local else hub_offline_reason()
    by_env = reason is not None and "is set" in reason
    if reason is not None and not by_env:
        # Not offline by configuration: `datasets` would retry the hub for tens of seconds.
        raise offline_error(hub_name, reason, cache_tried=False)
    import datasets

    try:
        ds = datasets.load_dataset(
            hub_name, cfg.get("subset"), split=cfg.get("hub_split", "train"), data_files=cfg.get("data_files")
        )
    except Exception as exc:
        if by_env:
            raise offline_error(hub_name, reason, cache_tried=True, detail=type(exc).__name__) from exc
        raise DataError(f"cannot load Hugging Face dataset '{hub_name}': {exc}") from exc
    records = get_task(cfg.get("task")).record_type
    names = records.hub_label_names(ds.features, cfg)
    return records.from_frame(cfg.get("name", hub_name), ds.to_pandas(), cfg, names)
