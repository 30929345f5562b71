"""``forget=ids``: the real request, "forget these records": a file of sample ids (``forget.path``)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from unlearnbench.data.forget.base import ForgetStrategy, register
from unlearnbench.errors import ConfigError, DataError

ID_FILE = "an existing file of sample ids (a json list, or one id per line)"


def read_id_file(path: str | Path) -> list[str]:
    """A forget request: a json list of ids, or one id per line (blank lines and # comments skipped)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("forget.path", str(path), ID_FILE)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("forget.path", str(path), f"{ID_FILE}; it cannot be read ({exc})") from None
    if text.lstrip().startswith("["):
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise ConfigError("forget.path", str(path), f"{ID_FILE}; it is not valid json ({exc})") from None
        if any(isinstance(x, dict | list) or x is None for x in raw):
            raise ConfigError("forget.path", str(path), f"{ID_FILE}; its json list must hold ids only")
        ids = [str(x) for x in raw]
    else:
        ids = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not ids:
        raise ConfigError("forget.path", str(path), f"{ID_FILE}; this one lists no ids")
    dup = sorted(i for i, n in Counter(ids).items() if n > 1)
    if dup:
        raise DataError(f"forget id file {path} repeats ids {dup[:10]}; list each id once")
    return ids


@register("ids")
class IdsForget(ForgetStrategy):
    def select(self, data, task, train, cfg, rng, scores=None, manipulated=None) -> np.ndarray:
        wanted = read_id_file(cfg.get("path") or "")
        position = {data.ids[i]: i for i in train}
        missing = [i for i in wanted if i not in position]
        if missing:
            known = set(data.ids)
            unknown, held_out = [i for i in missing if i not in known], [i for i in missing if i in known]
            found = [f"{len(unknown)} not in the dataset: {unknown[:10]}"] if unknown else []
            found += (
                [f"{len(held_out)} in the val/test split, not in train: {held_out[:10]}"] if held_out else []
            )
            raise DataError(
                "forget.path must name training samples (by data.id_column, or the row number when it "
                f"is null); of its {len(wanted)} ids, {'; '.join(found)}"
            )
        return np.array([position[i] for i in wanted], dtype=np.int64)
