"""Small file utilities: atomic writes, stable hashing of configs, version stamps."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import math
import os
import platform
import re
import shutil
import socket
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from unlearnbench.errors import DataError

# Environment variables whose values must never reach a file: API keys, tokens, passwords.
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH", re.IGNORECASE)
REDACTED = "<redacted>"


def secret_values() -> list[str]:
    """The values of secret-looking environment variables (8 characters or more), longest first."""
    values = {v for k, v in os.environ.items() if SECRET_NAME.search(k) and len(v) >= 8}
    return sorted(values, key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with every secret value (as is, or as escaped in json) replaced by ``<redacted>``."""
    for value in secret_values():
        for form in {value, json.dumps(value)[1:-1]}:
            text = text.replace(form, REDACTED)
    return text


class RedactSecrets(logging.Filter):
    """A log handler filter that redacts secret values from every record (see :func:`redact`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def redact_logs() -> None:
    """Add :class:`RedactSecrets` to every handler of the root logger (console and log file)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactSecrets) for f in handler.filters):
            handler.addFilter(RedactSecrets())


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write via a temp file in the same directory and rename, so readers never see half a file.
    Secret values of the environment are redacted (see :func:`redact`)."""
    text = redact(text)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temp path beside ``path`` that replaces it when the block ends without error (written by
    the caller, e.g. a library that takes a file name)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as fh:  # on disk before it takes the name
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """A temp dir beside ``path`` that replaces ``path`` when the block ends without error: a kill
    leaves the old directory, or none, never a half-written one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def json_ready(obj: Any) -> Any:
    """NaN (an undefined metric) as null; numpy scalars as Python numbers."""
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


def stable_hash(obj: Any, length: int = 16) -> str:
    """Hash of a JSON-able object that does not depend on dict order."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def package_dir(package: str, hint: str) -> Path:
    """Directory of an installed data package, found without importing its code."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"package '{package}' is not installed: {hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def repeated(values: list[str], limit: int = 10) -> list[str]:
    """The values that occur more than once (at most ``limit``, sorted)."""
    return sorted(v for v, n in Counter(values).items() if n > 1)[:limit]


def package_versions() -> dict[str, str]:
    names = ["unlearnbench", "torch", "transformers", "lightning", "hydra-core", "datasets", "scikit-learn"]
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def unreachable_reason(host: str, port: int = 443, timeout: float = 2.0) -> str | None:
    """Why ``host:port`` cannot be reached, or None when a TCP connection opens; bounded by
    ``timeout`` seconds in all, the name lookup included (which has no timeout of its own)."""
    result: list[BaseException | None] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(None)
        except OSError as exc:
            result.append(exc)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    if not result:
        return f"no answer from {host} within {timeout:.0f} s"
    if result[0] is not None:
        return f"{host} cannot be reached ({result[0]})"
    return None


def check_dir_or_hub_id(key: str, value: Any, what: str) -> None:
    """``value`` must name a local directory or be a well-formed Hugging Face hub id (``name`` or
    ``org/name``): a path that is neither is refused now, naming ``key``, not by the hub client later.
    ``what``: what the key names, e.g. "a local model directory or a hub model id (org/name)"."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    from unlearnbench.errors import ConfigError

    path = Path(os.path.expanduser(str(value)))
    if path.is_dir():
        return
    if path.exists():
        raise ConfigError(key, str(value), f"{what}; it is a file, not a directory")
    try:
        validate_repo_id(str(value))
    except HFValidationError:
        allowed = f"{what}; there is no such directory, and it is not a hub id"
        raise ConfigError(key, str(value), allowed) from None
