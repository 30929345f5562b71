"""Raw data sources: the embedded corpora (:mod:`.embedded`), any Hugging Face dataset, local
csv / json / parquet files.

Each loader returns a :class:`TextDataset` (sequence classification: ids, texts, integer labels,
label names) or a :class:`TokenDataset` (token classification: ids, word lists, a tag per word);
nothing here tokenizes or splits.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from unlearnbench.errors import ConfigError, DataError
from unlearnbench.io import unreachable_reason

SOURCES = ("embedded_bbc", "embedded_tweets", "embedded_wnut16", "embedded_spam", "hf", "local")
TASKS = ("sequence_classification", "token_classification")
OUTSIDE = "O"  # the BIO tag of a word outside every entity
HUB_HOST = ("huggingface.co", 443)
HUB_PROBE_SECONDS = 2.0
# Hugging Face "packaged" builders: they read local files and need no hub.
LOCAL_BUILDERS = ("csv", "json", "parquet", "text", "arrow", "pandas", "imagefolder", "audiofolder")


@dataclass
class TextDataset:
    """Sequence classification: one label per text."""

    task: ClassVar[str] = "sequence_classification"
    name: str
    ids: list[str]
    texts: list[str]
    labels: np.ndarray  # int64, indices into label_names
    label_names: list[str]
    meta: dict[str, Any] = field(default_factory=dict)  # how it was built (raw size, duplicates dropped)

    def __post_init__(self) -> None:
        if not (len(self.ids) == len(self.texts) == len(self.labels)):
            raise DataError(f"dataset '{self.name}': ids, texts and labels differ in length")
        if len(set(self.ids)) != len(self.ids):
            raise DataError(f"dataset '{self.name}': sample ids are not unique: {repeated(self.ids)}")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def subset(self, keep: Sequence[int] | np.ndarray) -> TextDataset:
        keep = np.asarray(keep, dtype=np.int64)
        return TextDataset(
            self.name,
            [self.ids[i] for i in keep],
            [self.texts[i] for i in keep],
            self.labels[keep],
            self.label_names,
            dict(self.meta),
        )


@dataclass
class TokenDataset:
    """Token classification (NER): a tag per word of each sentence, BIO tags in ``label_names``.

    A sample is a sentence: splits, forget sets (``forget.ratio`` counts sentences) and
    subsamples pick sentences. ``labels`` is the sentence's stratum for those seeded draws
    (1: it holds an entity, 0: it does not), not a class of the model's head, which predicts
    one of ``label_names`` (``num_labels``) per word.
    """

    task: ClassVar[str] = "token_classification"
    name: str
    ids: list[str]
    tokens: list[list[str]]
    tags: list[np.ndarray]  # per sentence, int64 indices into label_names, one per word
    label_names: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (len(self.ids) == len(self.tokens) == len(self.tags)):
            raise DataError(f"dataset '{self.name}': ids, tokens and tags differ in length")
        if len(set(self.ids)) != len(self.ids):
            raise DataError(f"dataset '{self.name}': sample ids are not unique")
        if OUTSIDE not in self.label_names:
            raise DataError(f"dataset '{self.name}': no '{OUTSIDE}' tag among {self.label_names}")
        for i, (words, tags) in enumerate(zip(self.tokens, self.tags, strict=True)):
            if len(words) == 0 or len(words) != len(tags):
                raise DataError(
                    f"dataset '{self.name}': sentence {self.ids[i]} has {len(words)} words, {len(tags)} tags"
                )
        self.tags = [np.asarray(t, dtype=np.int64) for t in self.tags]

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def outside(self) -> int:
        return self.label_names.index(OUTSIDE)

    @property
    def texts(self) -> list[str]:
        """Each sentence's words joined by spaces (for hashing, lengths and display)."""
        return [" ".join(words) for words in self.tokens]

    @property
    def labels(self) -> np.ndarray:
        """The sentence stratum: 1 if it holds an entity (a tag other than O), else 0."""
        o = self.outside
        return np.array([int(bool((t != o).any())) for t in self.tags], dtype=np.int64)

    def tag_sets(self) -> list[frozenset[int]]:
        """The entity tags (all but O) of each sentence: what a class-stratified retain batch covers."""
        o = self.outside
        return [frozenset(int(x) for x in np.unique(t) if x != o) for t in self.tags]

    def entity_types(self) -> list[str]:
        """Entity types named by the B-/I- tags, in order (``person`` for B-person and I-person)."""
        out: list[str] = []
        for name in self.label_names:
            kind = name.split("-", 1)[1] if "-" in name else None
            if kind and kind not in out:
                out.append(kind)
        return out

    def subset(self, keep: Sequence[int] | np.ndarray) -> TokenDataset:
        keep = np.asarray(keep, dtype=np.int64)
        return TokenDataset(
            self.name,
            [self.ids[i] for i in keep],
            [self.tokens[i] for i in keep],
            [self.tags[i] for i in keep],
            self.label_names,
            dict(self.meta),
        )


Dataset = TextDataset | TokenDataset


def bio_tag_order(tags: Sequence[str]) -> list[str]:
    """O first, then B-/I- of each entity type, types in alphabetical order (a stable head layout)."""
    bad = sorted({t for t in tags if t != OUTSIDE and not re.fullmatch(r"[BI]-.+", t)})
    if bad:
        raise DataError(f"tags {bad[:10]} are not BIO tags (O, B-<type>, I-<type>)")
    kinds = sorted({t[2:] for t in tags if t != OUTSIDE})
    return [OUTSIDE] + [f"{p}-{k}" for k in kinds for p in ("B", "I")]


def package_dir(package: str, hint: str) -> Path:
    """Directory of an installed data package, found without importing its code."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"package '{package}' is not installed: {hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def duplicate_mask(texts: Sequence[str]) -> np.ndarray:
    """True for each text whose whitespace-normalised form appeared earlier (the first copy is kept)."""
    seen: set[str] = set()
    out = np.zeros(len(texts), dtype=bool)
    for i, text in enumerate(texts):
        key = " ".join(text.split())
        out[i] = key in seen
        seen.add(key)
    return out


def repeated(values: list[str], limit: int = 10) -> list[str]:
    """The values that occur more than once (at most ``limit``, sorted)."""
    return sorted(v for v, n in Counter(values).items() if n > 1)[:limit]


def _rows(mask: pd.Series, limit: int = 5) -> str:
    """The first rows (0-based, header excluded) where ``mask`` holds, e.g. ``rows [3, 17]``."""
    rows = [int(i) if isinstance(i, int | np.integer) else i for i in mask.index[mask][:limit]]
    return f"rows {rows}" + (" and more" if int(mask.sum()) > limit else "")


def _label_key(value: Any) -> str:
    """A label value as text, so that 1, 1.0 and "1" name the same label."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        value = int(value)
    return str(value)


def check_records(name: str, frame: pd.DataFrame, text_col: str, label_col: str, id_col: str | None) -> None:
    """Refuse, naming the rows (0-based, header excluded), records that no split could use:
    empty or null texts, missing labels, missing or repeated sample ids."""
    texts = frame[text_col]
    bad = texts.isna() | (texts.astype(str).str.strip() == "")
    if bad.any():
        raise DataError(
            f"dataset '{name}': {int(bad.sum())} empty or null texts in column '{text_col}' "
            f"({_rows(bad)}); every record needs a non-empty text"
        )
    missing = frame[label_col].isna()
    if missing.any():
        raise DataError(
            f"dataset '{name}': {int(missing.sum())} missing labels in column '{label_col}' "
            f"({_rows(missing)}); every record needs a label"
        )
    if id_col is not None:
        null_ids = frame[id_col].isna()
        if null_ids.any():
            raise DataError(
                f"dataset '{name}': {int(null_ids.sum())} missing sample ids in data.id_column "
                f"'{id_col}' ({_rows(null_ids)}); every record needs an id"
            )
        dup = repeated(frame[id_col].astype(str).tolist())
        if dup:
            raise DataError(
                f"dataset '{name}': sample ids repeat in data.id_column '{id_col}': {dup}; "
                "each id must name one record"
            )


def label_indices(
    name: str, raw: pd.Series, label_col: str, label_names: list[str] | None, cfg: Mapping[str, Any]
) -> tuple[np.ndarray, list[str]]:
    """The class index of every record and the label names. ``label_names`` from the loader (a
    Hugging Face ClassLabel): the column holds indices into it. Else ``data.label_names`` when set:
    the allowed labels, in class order. Else the sorted distinct values of the column."""
    if label_names is not None:
        lookup = {str(i): i for i in range(len(label_names))}
        allowed = f"class indices 0..{len(label_names) - 1} of {label_names}"
    elif cfg.get("label_names"):
        label_names = [_label_key(v) for v in cfg["label_names"]]
        if repeated(label_names):
            raise ConfigError("data.label_names", label_names, "a list of distinct labels")
        lookup = {n: i for i, n in enumerate(label_names)}
        allowed = f"data.label_names {label_names}"
    else:
        values = raw.unique().tolist()
        try:
            values = sorted(values)
        except TypeError:
            kinds = sorted({type(v).__name__ for v in values})
            raise DataError(
                f"dataset '{name}': labels in column '{label_col}' mix types {kinds}; use one type "
                "(all names or all numbers), or list them in data.label_names"
            ) from None
        label_names = [_label_key(v) for v in values]
        lookup = {n: i for i, n in enumerate(label_names)}
        allowed = ""
    keys = raw.map(_label_key)
    outside = ~keys.isin(list(lookup))
    if outside.any():
        found = sorted(set(keys[outside]))[:10]
        raise DataError(
            f"dataset '{name}': {int(outside.sum())} labels in column '{label_col}' are outside the "
            f"label set ({_rows(outside)}: {found}); allowed: {allowed}"
        )
    return keys.map(lookup).to_numpy(dtype=np.int64), list(label_names)


# ---------------------------------------------------------------------- frames (local files, the hub)
def _frame_to_dataset(
    name: str, frame: pd.DataFrame, cfg: Mapping[str, Any], label_names: list[str] | None = None
) -> TextDataset:
    text_col, label_col, id_col = cfg["text_column"], cfg["label_column"], cfg.get("id_column")
    for key, col in (
        ("data.text_column", text_col),
        ("data.label_column", label_col),
        ("data.id_column", id_col),
    ):
        if col is not None and col not in frame.columns:
            raise ConfigError(key, col, f"the data has columns {list(frame.columns)}")
    check_records(name, frame, text_col, label_col, id_col)
    labels, label_names = label_indices(name, frame[label_col], label_col, label_names, cfg)
    ids = frame[id_col].astype(str).tolist() if id_col else [str(i) for i in range(len(frame))]
    return TextDataset(name, ids, frame[text_col].astype(str).tolist(), labels, label_names)


def _frame_to_token_dataset(
    name: str, frame: pd.DataFrame, cfg: Mapping[str, Any], label_names: list[str] | None = None
) -> TokenDataset:
    """Rows of (a list of words, a list of tags): tags as names, or as ids into ``label_names``."""
    tok_col, tag_col, id_col = cfg.get("tokens_column"), cfg.get("tags_column"), cfg.get("id_column")
    for key, col in (
        ("data.tokens_column", tok_col),
        ("data.tags_column", tag_col),
        ("data.id_column", id_col),
    ):
        if col not in frame.columns and (col is not None or key != "data.id_column"):
            raise ConfigError(key, col, f"the data has columns {list(frame.columns)}")
    tokens = [[str(w) for w in words] for words in frame[tok_col]]
    raw = [list(t) for t in frame[tag_col]]
    if label_names is None:
        if any(not isinstance(x, str) for t in raw for x in t):
            raise ConfigError(
                "data.label_names", None, "the tag names, in id order, when the tags column holds ids"
            )
        label_names = bio_tag_order({x for t in raw for x in t})
    lookup = {n: i for i, n in enumerate(label_names)}
    tags = [np.array([lookup[x] if isinstance(x, str) else int(x) for x in t], dtype=np.int64) for t in raw]
    keep = [i for i, w in enumerate(tokens) if w]  # hub NER sets hold empty "sentences" (document breaks)
    ids = frame[id_col].astype(str).tolist() if id_col else [str(i) for i in range(len(frame))]
    data = TokenDataset(
        name, [ids[i] for i in keep], [tokens[i] for i in keep], [tags[i] for i in keep], list(label_names)
    )
    data.meta["empty_sentences_dropped"] = len(tokens) - len(keep)
    return data


def load_local(cfg: Mapping[str, Any]) -> Dataset:
    """A local csv / json / jsonl / parquet file with configurable columns."""
    path = Path(str(cfg.get("path") or ""))
    if not cfg.get("path") or not path.is_file():
        raise ConfigError(
            "data.path", cfg.get("path"), "must name an existing csv, json, jsonl or parquet file"
        )
    fmt = cfg.get("format") or "auto"
    if fmt == "auto":
        fmt = path.suffix.lstrip(".").lower()
    readers = {
        "csv": pd.read_csv,
        "tsv": lambda p: pd.read_csv(p, sep="\t"),
        "json": pd.read_json,
        "jsonl": lambda p: pd.read_json(p, lines=True),
        "parquet": pd.read_parquet,
    }
    if fmt not in readers:
        raise ConfigError("data.format", fmt, f"one of auto, {', '.join(readers)}")
    try:
        frame = readers[fmt](path)
    except Exception as exc:  # pandas raises many types; the user needs the file and the reason
        raise DataError(
            f"data.path={str(path)!r} cannot be read as {fmt} ({type(exc).__name__}: {exc}); "
            f"expected a readable {fmt} file with columns '{cfg.get('text_column')}' and "
            f"'{cfg.get('label_column')}'"
        ) from exc
    name = cfg.get("name", path.stem)
    if cfg.get("task") == "token_classification":
        return _frame_to_token_dataset(name, frame, cfg, cfg.get("label_names"))
    return _frame_to_dataset(name, frame, cfg)


# ---------------------------------------------------------------------- the hub
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
    from unlearnbench.data.embedded import EMBEDDED

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
    name = cfg.get("name", hub_name)
    if cfg.get("task") == "token_classification":
        feature = ds.features.get(cfg.get("tags_column"))
        inner = getattr(feature, "feature", None)
        names = list(inner.names) if hasattr(inner, "names") else cfg.get("label_names")
        return _frame_to_token_dataset(name, ds.to_pandas(), cfg, names)
    label_names = None
    feature = ds.features.get(cfg["label_column"])
    if feature is not None and hasattr(feature, "names"):
        label_names = list(feature.names)
    return _frame_to_dataset(name, ds.to_pandas(), cfg, label_names)


# ---------------------------------------------------------------------- dispatch
def load_raw(cfg: Mapping[str, Any]) -> Dataset:
    """The whole dataset that ``cfg`` (the ``data`` config group) names, checked, not subsampled."""
    from unlearnbench.data import embedded

    source = cfg.get("source")
    loaders = {
        "embedded_bbc": embedded.load_bbc,
        "embedded_tweets": embedded.load_tweets,
        "embedded_wnut16": embedded.load_wnut16,
        "embedded_spam": embedded.load_spam,
        "hf": load_hf,
        "local": load_local,
    }
    if source not in loaders:
        raise ConfigError("data.source", source, f"one of {', '.join(SOURCES)}")
    task = cfg.get("task") or "sequence_classification"
    if task not in TASKS:
        raise ConfigError("data.task", task, f"one of {', '.join(TASKS)}")
    data = loaders[source](cfg)
    if data.task != task:
        raise ConfigError("data.task", task, f"source {source} gives a {data.task} dataset")
    if len(data) == 0:
        raise DataError(f"dataset '{data.name}' is empty: it needs at least one record")
    num_labels = cfg.get("num_labels")
    if num_labels is not None and int(num_labels) != data.num_labels:
        raise ConfigError(
            "data.num_labels", num_labels, f"the data has {data.num_labels} labels {data.label_names}"
        )
    values = np.concatenate(data.tags) if isinstance(data, TokenDataset) else data.labels
    if values.min() < 0 or values.max() >= data.num_labels:
        raise DataError(f"dataset '{data.name}': labels outside 0..{data.num_labels - 1}")
    return data


def load_source(cfg: Mapping[str, Any]) -> Dataset:
    """Load the dataset that ``cfg`` (the ``data`` config group) names, then subsample if asked."""
    data = load_raw(cfg)
    max_samples = cfg.get("max_samples")
    if max_samples is not None:
        data = stratified_subsample(data, int(max_samples), int(cfg.get("subsample_seed", 0)))
    return data


def stratified_subsample(data: Dataset, n: int, seed: int) -> Dataset:
    """Keep n samples with the class proportions of the whole (a fixed seed, independent of the run seed).

    Token datasets keep the share of sentences that hold an entity."""
    if n <= 0:
        raise ConfigError("data.max_samples", n, "a positive number of samples, or null for all")
    if n >= len(data):
        return data
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(np.arange(len(data)), train_size=n, stratify=data.labels, random_state=seed)
    out = data.subset(np.sort(keep))
    out.meta["subsampled_from"] = len(data)
    return out
