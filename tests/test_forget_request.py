"""Deletion requests as a user makes them: a complete exported model that plain transformers loads
and serves with the run's own predictions, the user's own train / test files, and
``unlearnbench-forget`` (requests one after another, the audit, a rerun that reuses the work, bad
input refused in one line)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

from unlearnbench.audit import sha256_tree
from unlearnbench.cli.forget import forget_request
from unlearnbench.config import CONF_DIR
from unlearnbench.data.embedded import load_bbc
from unlearnbench.errors import UnlearnbenchError
from unlearnbench.pipeline import prepare, run_experiment

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def user_files(tmp_path_factory) -> Path:
    """A user's data: train and test csv files with record ids, and two deletion requests."""
    root = tmp_path_factory.mktemp("user")
    bbc = load_bbc({})
    pick = np.random.default_rng(0).choice(len(bbc), 300, replace=False)
    frame = pd.DataFrame(
        {
            "id": [f"doc{i}" for i in pick],
            "text": [bbc.texts[i] for i in pick],
            "label": [bbc.label_names[bbc.labels[i]] for i in pick],
        }
    )
    frame.iloc[:240].to_csv(root / "train.csv", index=False)
    frame.iloc[240:].to_csv(root / "test.csv", index=False)
    (root / "req1.txt").write_text("\n".join(frame.id.iloc[:8]) + "\nnot-a-record\n")
    (root / "req2.txt").write_text("\n".join(frame.id.iloc[8:16]) + f"\n{frame.id.iloc[250]}\n")
    return root


LOCAL = ["data=local", "data.id_column=id", "data.max_length=64", "data.max_samples=null"]


def local(files: Path) -> list[str]:
    return [*LOCAL, f"data.path={files / 'train.csv'}", f"data.test_path={files / 'test.csv'}"]


@pytest.fixture(scope="module")
def user_model(user_files, tmp_path_factory) -> tuple[Path, Path]:
    """The user's fine-tuned model: a benchmark run with save_model=true (the original, exported)."""
    from tests.conftest import compose_cfg

    root = tmp_path_factory.mktemp("model")
    cfg = compose_cfg(["method=original", "save_model=true", *local(user_files)], root / "cache")
    run_experiment(cfg, root / "run")
    return root / "run", root / "cache"


def test_the_users_own_test_file_is_the_test_split_and_val_is_carved_out_of_train(
    make_cfg, user_files
) -> None:
    _, _, data = prepare(make_cfg(*local(user_files)))
    test_ids = set(pd.read_csv(user_files / "test.csv").id)
    assert {data.records.ids[i] for i in data.splits.test} == test_ids
    train_ids = set(pd.read_csv(user_files / "train.csv").id)
    assert {data.records.ids[i] for i in np.r_[data.splits.train, data.splits.val]} == train_ids
    assert len(data.splits.val) == round(0.1 * 240) or abs(len(data.splits.val) - 24) <= 1


def test_an_exported_model_reloads_with_plain_transformers_and_gives_the_runs_predictions(
    user_model, user_files, make_cfg
) -> None:
    run, _ = user_model
    texts = prepare(make_cfg(*local(user_files)))[2].records.texts
    tokenizer = AutoTokenizer.from_pretrained(run / "model")
    model = AutoModelForSequenceClassification.from_pretrained(run / "model").eval()
    frame = pd.read_parquet(run / "predictions.parquet")
    test = frame[frame.split == "test"].sort_values("index")
    batch = [texts[i] for i in test["index"]]
    with torch.inference_mode():
        enc = tokenizer(batch, truncation=True, max_length=64, padding=True, return_tensors="pt")
        preds = model(**enc).logits.argmax(-1).numpy()
    assert (preds == test["pred"].to_numpy()).all()  # the run's own predictions
    served = pipeline("text-classification", model=str(run / "model"))(
        batch[:5], truncation=True, max_length=64
    )
    names = json.loads((run / "model" / "config.json").read_text())["id2label"]
    assert [r["label"] for r in served] == [
        names[str(p)] for p in test["pred"].iloc[:5]
    ]  # with the label names
    card = (run / "model" / "README.md").read_text()
    assert "What was removed" in card and "Headline numbers" in card


def request_cfg(files: Path, model: Path, cache: Path, out: Path, *overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(
            "forget_request",
            overrides=[
                f"model.checkpoint={model}",
                f"data.path={files / 'train.csv'}",
                f"data.test_path={files / 'test.csv'}",
                "data.id_column=id",
                "data.max_length=64",
                f"request.ids=[{files / 'req1.txt'},{files / 'req2.txt'}]",
                "method=finetune",
                "method.max_steps=2",
                f"output_dir={out}",
                f"paths.cache_dir={cache}",
                "logger=none",
                "trainer.enable_progress_bar=false",
                *overrides,
            ],
        )


def test_a_deletion_request_writes_the_model_and_an_audit_and_a_rerun_reuses_it(
    user_files, user_model, tmp_path
) -> None:
    run, cache = user_model
    out = tmp_path / "out"
    cfg = request_cfg(user_files, run / "model", cache, out)
    audit = forget_request(cfg, out, out / "run")
    ids = audit["ids"]
    assert (
        ids["requested"] == 18
        and ids["found"] + len(ids["not_found"]) == 18
        and "not-a-record" in ids["not_found"]
    )
    assert [r["file"] for r in audit["requests"]] == [
        str(user_files / "req1.txt"),
        str(user_files / "req2.txt"),
    ]
    assert [r["request"] for r in audit["sequential"]["requests"]] == [1, 2]  # one after another
    assert audit["sha256"]["output_model"] == sha256_tree(out / "model")
    assert (
        audit["sha256"]["input_model"] == sha256_tree(run / "model") and len(audit["sha256"]["requests"]) == 2
    )
    assert audit["before"]["forget"]["n"] == ids["found"] and audit["after"]["test"]["n"] == 60
    on_disk = json.loads((out / "audit.json").read_text())
    assert on_disk["ids"] == ids and "Deletion audit" in (out / "audit.md").read_text()
    AutoModelForSequenceClassification.from_pretrained(out / "model")  # plain transformers loads it
    stamp = (out / "run" / "results.json").stat().st_mtime_ns
    forget_request(request_cfg(user_files, run / "model", cache, out), out, out / "run")
    assert (out / "run" / "results.json").stat().st_mtime_ns == stamp  # the same inputs: reused
    forget_request(request_cfg(user_files, run / "model", cache, out, "method.max_steps=1"), out, out / "run")
    assert (out / "run" / "results.json").stat().st_mtime_ns != stamp  # other parameters: done again


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no-tokenizer", r"model\.checkpoint=.*tokenizer files"),
        ("empty-request", r"request\.ids=.*|forget\.path=.*lists no ids"),
        ("strict", r"not in the data.*forget\.strict"),
        ("foreign-test-labels", r"data\.test_path=.*labels that the training file does not"),
        ("retrain-without-base", r"model\.path=.*pretrained model"),
    ],
)
def test_bad_requests_are_refused_in_one_line(user_files, user_model, tmp_path, case, message) -> None:
    run, cache = user_model
    model, extra = run / "model", []
    if case == "no-tokenizer":
        model = tmp_path / "bare"
        model.mkdir()
        for name in ("config.json", "model.safetensors"):
            (model / name).write_bytes((run / "model" / name).read_bytes())
    elif case == "empty-request":
        (tmp_path / "empty.txt").write_text("# nothing\n")
        extra = [f"request.ids={tmp_path / 'empty.txt'}"]
    elif case == "strict":
        extra = ["request.strict=true"]
    elif case == "foreign-test-labels":
        test = pd.read_csv(user_files / "test.csv")
        test.loc[0, "label"] = "weather"
        test.to_csv(tmp_path / "test.csv", index=False)
        extra = [f"data.test_path={tmp_path / 'test.csv'}"]
    elif case == "retrain-without-base":
        extra = ["audit.reference=retrain"]
    cfg = request_cfg(user_files, model, cache, tmp_path / "out", *extra)
    with pytest.raises(UnlearnbenchError, match=message):
        forget_request(cfg, tmp_path / "out", tmp_path / "out" / "run")


def test_the_command_prints_one_line_and_exits_2(user_files, user_model, tmp_path) -> None:
    _, cache = user_model
    cmd = [
        BIN / "unlearnbench-forget",
        f"model.checkpoint={tmp_path}",
        f"data.path={user_files / 'train.csv'}",
        f"request.ids={user_files / 'req1.txt'}",
        f"output_dir={tmp_path / 'out'}",
        f"paths.cache_dir={cache}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "model.checkpoint" in done.stderr
