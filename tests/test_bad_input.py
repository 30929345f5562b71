"""Bad input is refused before any training starts, with a message that names the key or the record
and says what is allowed; the command ends with exit status 2 and that one line, no traceback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from transformers import AutoModelForSequenceClassification, BertConfig

import unlearnbench
from tests.conftest import TINY
from tests.test_cli import unlearnbench_here
from unlearnbench.errors import UnlearnbenchError
from unlearnbench.pipeline import run_experiment


# ---------------------------------------------------------------------- inputs the cases refer to
def local_csv(tmp: Path, rows: dict[str, list], name: str = "d.csv") -> str:
    path = tmp / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


NL = "\n"
BAD_JSON = '["a", '
MIXED_LABELS = [{"text": "a", "label": 1}, {"text": "b", "label": "x"}]
GOOD = {"text": ["good film", "bad film", "fine film", "dull film"], "label": ["pos", "neg", "pos", "neg"]}
ONE_CLASS = {"text": [f"film {i}" for i in range(40)], "label": ["pos"] * 40}
RARE_CLASS = {"text": [f"film {i}" for i in range(40)], "label": ["pos"] * 38 + ["neg"] * 2}


def write(tmp: Path, name: str, content: str | bytes) -> str:
    path = tmp / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


def tiny_checkpoint(tmp: Path, num_labels: int) -> Path:
    config = BertConfig(
        vocab_size=30522,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=num_labels,
    )
    path = tmp / f"ckpt{num_labels}"
    AutoModelForSequenceClassification.from_config(config).save_pretrained(path, safe_serialization=True)
    return path


def corrupt_checkpoint(tmp: Path) -> str:
    path = tiny_checkpoint(tmp, 5)
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a copy that stopped half way
    return str(path)


Case = Callable[[Path], list[str]]  # tmp dir -> overrides
CASES: list[tuple[str, Case, list[str]]] = [
    # forget ratio: <= 0, >= 1, not a number (random); outside (0, 1] (class)
    ("ratio-zero", lambda t: ["forget.ratio=0"], [r"forget\.ratio=0\.0 is invalid: a number in \(0, 1\)"]),
    ("ratio-negative", lambda t: ["forget.ratio=-0.2"], [r"forget\.ratio=-0\.2 .*\(0, 1\)"]),
    ("ratio-one", lambda t: ["forget.ratio=1"], [r"forget\.ratio=1\.0 .*\(0, 1\)"]),
    ("ratio-above-one", lambda t: ["forget.ratio=1.5"], [r"forget\.ratio=1\.5 .*\(0, 1\)"]),
    ("ratio-not-a-number", lambda t: ["forget.ratio=lots"], [r"forget\.ratio='lots' .*a number in \(0, 1\)"]),
    ("ratio-null", lambda t: ["forget.ratio=null"], [r"forget\.ratio=None .*a number in \(0, 1\)"]),
    ("ratio-too-small", lambda t: ["forget.ratio=0.0001"], [r"forget\.ratio=0\.0001 .*at least 1 of \d+"]),
    (
        "class-ratio-above-one",
        lambda t: ["forget=class", "forget.class_name=tech", "forget.ratio=2"],
        [r"forget\.ratio=2 .*\(0, 1\]"],
    ),
    # unknown names
    ("unknown-method", lambda t: ["method.name=bogus"], [r"method\.name='bogus' .*one of .*deepcut.*sisa"]),
    ("unknown-data-source", lambda t: ["data.source=bogus"], [r"data\.source='bogus' .*one of .*local"]),
    ("unknown-model-source", lambda t: ["model.source=bogus"], [r"model\.source='bogus' .*embedded, hub"]),
    (
        "unknown-strategy",
        lambda t: ["forget.strategy=bogus"],
        [r"forget\.strategy='bogus' .*random, class, ids"],
    ),
    (
        "unknown-class",
        lambda t: ["forget=class", "forget.class_name=weather"],
        [r"forget\.class_name='weather' .*\['business', 'entertainment', 'politics', 'sports', 'tech'\]"],
    ),
    # forget id files
    (
        "ids-file-missing",
        lambda t: ["forget=ids", f"forget.path={t / 'nope.txt'}"],
        [r"forget\.path='.*nope\.txt' is invalid: an existing file of sample ids"],
    ),
    (
        "ids-file-empty",
        lambda t: ["forget=ids", f"forget.path={write(t, 'ids.txt', '# nothing yet' + NL)}"],
        [r"forget\.path='.*ids\.txt' .*sample ids.*lists no ids"],
    ),
    (
        "ids-file-empty-json",
        lambda t: ["forget=ids", f"forget.path={write(t, 'ids.json', '[]')}"],
        [r"forget\.path='.*ids\.json' .*lists no ids"],
    ),
    (
        "ids-file-bad-json",
        lambda t: ["forget=ids", f"forget.path={write(t, 'ids.json', BAD_JSON)}"],
        [r"forget\.path='.*ids\.json' .*not valid json"],
    ),
    (
        "ids-file-not-text",
        lambda t: ["forget=ids", f"forget.path={write(t, 'ids.bin', bytes([0xFF, 0xFE, 0x00, 0x81]))}"],
        [r"forget\.path='.*ids\.bin' .*cannot be read"],
    ),
    (
        "ids-unknown",
        lambda t: ["forget=ids", f"forget.path={write(t, 'ids.txt', 'no-such-article' + NL + 'nor-this')}"],
        [
            r"forget\.path must name training samples",
            r"2 not in the dataset: \['no-such-article', 'nor-this'\]",
        ],
    ),
    (
        "ids-repeated",
        lambda t: ["forget=ids", f"forget.path={write(t, 'ids.json', json.dumps(['tech/001', 'tech/001']))}"],
        [r"repeats ids \['tech/001'\]; list each id once"],
    ),
    # local data files
    (
        "local-missing",
        lambda t: ["data=local", f"data.path={t / 'nope.csv'}"],
        [r"data\.path='.*nope\.csv' is invalid: must name an existing csv, json, jsonl or parquet file"],
    ),
    (
        "local-unreadable",
        lambda t: ["data=local", f"data.path={write(t, 'd.parquet', b'this is no parquet file')}"],
        [r"data\.path='.*d\.parquet' cannot be read as parquet", r"expected a readable parquet file"],
    ),
    (
        "local-unknown-format",
        lambda t: ["data=local", f"data.path={write(t, 'd.xlsx', 'x')}"],
        [r"data\.format='xlsx' .*one of auto, csv, tsv, json, jsonl, parquet"],
    ),
    (
        "local-no-text-column",
        lambda t: ["data=local", f"data.path={local_csv(t, {'body': GOOD['text'], 'label': GOOD['label']})}"],
        [r"data\.text_column='text' .*columns \['body', 'label'\]"],
    ),
    (
        "local-no-label-column",
        lambda t: ["data=local", f"data.path={local_csv(t, {'text': GOOD['text'], 'stars': GOOD['label']})}"],
        [r"data\.label_column='label' .*columns \['text', 'stars'\]"],
    ),
    (
        "local-no-id-column",
        lambda t: ["data=local", f"data.path={local_csv(t, GOOD)}", "data.id_column=rid"],
        [r"data\.id_column='rid' .*columns \['text', 'label'\]"],
    ),
    (
        "local-empty-text",
        lambda t: ["data=local", f"data.path={local_csv(t, {**GOOD, 'text': ['a', '  ', 'c', 'd']})}"],
        [r"1 empty or null texts in column 'text' \(rows \[1\]\)", r"every record needs a non-empty text"],
    ),
    (
        "local-null-text",
        lambda t: ["data=local", f"data.path={local_csv(t, {**GOOD, 'text': ['a', 'b', None, None]})}"],
        [r"2 empty or null texts in column 'text' \(rows \[2, 3\]\)"],
    ),
    (
        "local-missing-label",
        lambda t: ["data=local", f"data.path={local_csv(t, {**GOOD, 'label': ['pos', None, 'neg', 'pos']})}"],
        [r"1 missing labels in column 'label' \(rows \[1\]\)", r"every record needs a label"],
    ),
    (
        "local-label-outside-set",
        lambda t: [
            "data=local",
            f"data.path={local_csv(t, {**GOOD, 'label': ['pos', 'neg', 'meh', 'pos']})}",
            "data.label_names=[neg,pos]",
        ],
        [
            r"1 labels in column 'label' are outside the label set \(rows \[2\]: \['meh'\]\)",
            r"allowed: data\.label_names \['neg', 'pos'\]",
        ],
    ),
    (
        "local-label-names-repeat",
        lambda t: ["data=local", f"data.path={local_csv(t, GOOD)}", "data.label_names=[neg,pos,neg]"],
        [r"data\.label_names=\['neg', 'pos', 'neg'\] is invalid: a list of distinct labels"],
    ),
    (
        "local-labels-mix-types",
        lambda t: [
            "data=local",
            f"data.path={write(t, 'd.json', json.dumps(MIXED_LABELS))}",
        ],
        [r"labels in column 'label' mix types \['int', 'str'\]", r"data\.label_names"],
    ),
    (
        "local-repeated-ids",
        lambda t: [
            "data=local",
            f"data.path={local_csv(t, {**GOOD, 'rid': ['r1', 'r2', 'r1', 'r3']})}",
            "data.id_column=rid",
        ],
        [r"sample ids repeat in data\.id_column 'rid': \['r1'\]; each id must name one record"],
    ),
    (
        "local-missing-ids",
        lambda t: [
            "data=local",
            f"data.path={local_csv(t, {**GOOD, 'rid': ['r1', None, 'r2', 'r3']})}",
            "data.id_column=rid",
        ],
        [r"1 missing sample ids in data\.id_column 'rid' \(rows \[1\]\)"],
    ),
    (
        "local-header-only",
        lambda t: ["data=local", f"data.path={write(t, 'd.csv', 'text,label' + NL)}"],
        [r"dataset 'local' is empty: it needs at least one record"],
    ),
    (
        "num-labels-mismatch",
        lambda t: ["data=local", f"data.path={local_csv(t, GOOD)}", "data.num_labels=3"],
        [r"data\.num_labels=3 is invalid: the data has 2 labels \['neg', 'pos'\]"],
    ),
    (
        "num-labels-mismatch-bbc",
        lambda t: ["data.num_labels=4"],
        [r"data\.num_labels=4 .*5 labels \['business"],
    ),
    # user checkpoints (model.checkpoint)
    (
        "checkpoint-missing",
        lambda t: [f"model.checkpoint={t / 'no-model'}"],
        [
            r"model\.checkpoint='.*no-model' is invalid: a model directory written by save_model=true",
            r"no such directory",
        ],
    ),
    (
        "checkpoint-not-a-model",
        lambda t: [f"model.checkpoint={Path(write(t, 'notes.txt', 'x')).parent}"],
        [r"model\.checkpoint=.*config\.json and model\.safetensors.*holds \[.*'notes\.txt'"],
    ),
    (
        "checkpoint-corrupt",
        lambda t: [f"model.checkpoint={corrupt_checkpoint(t)}"],
        [r"model\.checkpoint='.*ckpt5' .*model\.safetensors is corrupt"],
    ),
    (
        "checkpoint-wrong-labels",
        lambda t: [f"model.checkpoint={tiny_checkpoint(t, 3)}"],
        [r"model\.checkpoint='.*ckpt3' is invalid: a model with 5 labels, as the data has; it has 3"],
    ),
    # a whole-class request that leaves the retain set without the class a method needs
    (
        "whole-class-deepcut",
        lambda t: [
            "method=deepcut",
            "method.negatives_from=retain",
            "forget=class",
            "forget.class_name=business",
            "forget.ratio=1.0",
        ],
        [
            r"method\.negatives_from='retain' .*no samples of forget class\(es\) \['business'\]",
            r"negatives_from=retain_and_forget",
        ],
    ),
    # batch size, learning rate, epochs: negative or zero (the method's and the train.* recipe's)
    (
        "batch-size-zero",
        lambda t: ["method=finetune", "method.batch_size=0"],
        [r"method\.batch_size=0 .*positive"],
    ),
    (
        "batch-size-negative",
        lambda t: ["method=finetune", "method.batch_size=-8"],
        [r"method\.batch_size=-8 .*positive"],
    ),
    (
        "forget-batch-size-zero",
        lambda t: ["method=deepcut", "method.forget_batch_size=0"],
        [r"method\.forget_batch_size=0 .*positive"],
    ),
    (
        "lr-zero",
        lambda t: ["method=finetune", "method.lr=0"],
        [r"method\.lr=0\.0 is invalid: a positive number"],
    ),
    (
        "lr-negative",
        lambda t: ["method=gradient_ascent", "method.lr=-1e-4"],
        [r"method\.lr=-0\.0001 .*positive"],
    ),
    ("lr-nan", lambda t: ["method=finetune", "method.lr=nan"], [r"method\.lr=nan .*positive"]),
    (
        "lr-not-a-number",
        lambda t: ["method=finetune", "method.lr=fast"],
        [r"method\.lr='fast' .*keys: name, lr"],
    ),
    ("epochs-zero", lambda t: ["method=finetune", "method.epochs=0"], [r"method\.epochs=0 .*positive"]),
    ("epochs-negative", lambda t: ["method=npo", "method.epochs=-1"], [r"method\.epochs=-1 .*positive"]),
    ("train-batch-size-zero", lambda t: ["train.batch_size=0"], [r"train\.batch_size=0 .*positive"]),
    ("train-lr-negative", lambda t: ["train.lr=-0.1"], [r"train\.lr=-0\.1 .*positive"]),
    ("train-epochs-zero", lambda t: ["train.epochs=0"], [r"train\.epochs=0 .*positive"]),
    ("eval-batch-size-zero", lambda t: ["eval.batch_size=0"], [r"eval\.batch_size=0 .*a positive integer"]),
    # other keys of the run
    ("seed-not-an-integer", lambda t: ["seed=abc"], [r"seed='abc' is invalid: an integer"]),
    ("seed-negative", lambda t: ["seed=-5"], [r"^seed=-5 is invalid: an integer in \[0, 4294967295\]$"]),
    (
        "seed-too-large",
        lambda t: ["data.subsample_seed=4294967296"],
        [r"data\.subsample_seed=4294967296 is invalid: an integer in \[0, 4294967295\]"],
    ),
    # non-finite numbers, wherever they are in the config
    (
        "nan-method-param",
        lambda t: ["method=deepcut", "method.gamma=nan"],
        [r"method\.gamma=nan .*a finite number"],
    ),
    (
        "inf-method-param",
        lambda t: ["method=deepcut", "method.tau=inf"],
        [r"method\.tau=inf .*a finite number"],
    ),
    # values that are each valid but impossible together: sizes against the model and the data
    (
        "max-length-above-positions",
        lambda t: ["data.max_length=100000"],
        [
            r"data\.max_length=100000 is invalid: at most 512, .*max_position_embeddings",
            r"special tokens included",
        ],
    ),
    (
        "max-length-below-special-tokens",
        lambda t: ["data.max_length=2"],
        [r"data\.max_length=2 is invalid: an integer above 2, the tokenizer's special tokens"],
    ),
    (
        "max-samples-below-classes",
        lambda t: ["data.max_samples=3"],
        [r"data\.max_samples=3 is invalid: at least 42 for dataset 'bbc'", r"each class needs 3 samples"],
    ),
    (
        "max-samples-too-few-for-the-split",
        lambda t: ["data.max_samples=40"],
        [
            r"data\.max_samples=40 .*at least 42 ",
            r"the val split gets 4 of 40 samples.*fewer than the 5 classes",
        ],
    ),
    (
        "test-fraction-too-small-for-the-classes",
        lambda t: ["data.test_fraction=0.01"],
        [r"the test split gets 2 of 200 samples \(data\.val_fraction=0\.1, data\.test_fraction=0\.01\)"],
    ),
    (
        "sisa-shards-above-samples",
        lambda t: ["method=sisa", "method.shards=500"],
        [r"method\.shards=500 is invalid: at most 28: the 140 training samples of 5 classes"],
    ),
    (
        "sisa-slices-above-samples",
        lambda t: ["method=sisa", "method.shards=5", "method.slices=100"],
        [r"method\.slices=100 is invalid: at most 28 with method\.shards=5"],
    ),
    # degenerate data: one class, a class too small for the split
    (
        "local-one-class",
        lambda t: ["data=local", f"data.path={local_csv(t, ONE_CLASS)}"],
        [r"dataset 'local' holds one label, 'pos', in all its 40 records .*at least 2 classes"],
    ),
    (
        "local-one-class-of-two-declared",
        lambda t: ["data=local", f"data.path={local_csv(t, ONE_CLASS)}", "data.label_names=[neg,pos]"],
        [r"holds one label, 'pos'"],
    ),
    (
        "local-class-too-small-for-the-split",
        lambda t: ["data=local", f"data.path={local_csv(t, RARE_CLASS)}"],
        [r"too few samples \(40\) for the split: class 'neg' has 2; each class needs 3 samples"],
    ),
    # paths that are neither a directory nor a hub id
    (
        "model-path-missing",
        lambda t: ["model=hf", "model.path=/nonexistent"],
        [
            r"model\.path='/nonexistent' is invalid: a local model directory or a hub model id",
            r"no such directory",
        ],
    ),
    (
        "model-path-a-file",
        lambda t: ["model=hf", f"model.path={write(t, 'model.bin', 'x')}"],
        [r"model\.path='.*model\.bin' .*it is a file, not a directory"],
    ),
    (
        "tokenizer-path-missing",
        lambda t: [f"model.tokenizer={t / 'no-tokenizer'}"],
        [r"model\.tokenizer='.*no-tokenizer' is invalid: .*no such directory, and it is not a hub id"],
    ),
    (
        "trust-remote-code-not-a-bool",
        lambda t: ["model.trust_remote_code='yes'"],
        [r"model\.trust_remote_code='yes' is invalid: true or false"],
    ),
]


@pytest.mark.parametrize(("overrides", "patterns"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_before_training(make_cfg, tmp_path, overrides: Case, patterns) -> None:
    cache = tmp_path / "cache"
    cfg = make_cfg(*overrides(tmp_path), cache_dir=cache)
    with pytest.raises(UnlearnbenchError) as info:
        run_experiment(cfg, tmp_path / "run")
    message = str(info.value)
    assert "\n" not in message  # one line
    for pattern in patterns:
        assert re.search(pattern, message), f"{pattern!r} not in {message!r}"
    assert not (cache / "models").exists()  # nothing was trained
    assert not (tmp_path / "run" / "results.json").exists()


def test_forget_ids_outside_the_training_split_are_named(make_cfg, tmp_path) -> None:
    from unlearnbench.pipeline import prepare

    _, _, data = prepare(make_cfg(cache_dir=tmp_path / "cache"))
    held_out = data.sample_ids("test")[:2]
    path = write(tmp_path, "ids.txt", "\n".join([data.sample_ids("train")[0], *held_out]))
    with pytest.raises(UnlearnbenchError) as info:
        prepare(make_cfg("forget=ids", f"forget.path={path}", cache_dir=tmp_path / "cache"))
    message = str(info.value)
    assert "forget.path must name training samples" in message
    assert f"2 in the val/test split, not in train: {held_out}" in message


# ---------------------------------------------------------------------- the command line
def unlearnbench_cli(tmp_path: Path, *overrides: str, env: dict[str, str] | None = None):
    """The installed console script, importing this checkout's package."""
    script = Path(sys.executable).parent / "unlearnbench"
    src = str(Path(unlearnbench.__file__).resolve().parents[1])
    environ = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    environ.update({"PYTHONPATH": src, "HF_HUB_OFFLINE": "1", **(env or {})})
    cmd = [str(script), *TINY, f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}"]
    return subprocess.run([*cmd, *overrides], capture_output=True, text=True, timeout=300, env=environ)


CLI_CASES = [
    ("unknown-data", lambda t: ["data=bogus"], r"error: data='bogus' is invalid: one of .*bbc, .*wnut16"),
    (
        "ids-file-missing",
        lambda t: ["forget=ids", f"forget.path={t / 'nope.txt'}"],
        r"error: forget\.path='.*nope\.txt' is invalid: an existing file of sample ids",
    ),
    (
        "local-no-label-column",
        lambda t: ["data=local", f"data.path={local_csv(t, {'text': ['a', 'b'], 'y': [0, 1]})}"],
        r"error: data\.label_column='label' is invalid: the data has columns \['text', 'y'\]",
    ),
    (
        "checkpoint-corrupt",
        lambda t: [f"model.checkpoint={corrupt_checkpoint(t)}"],
        r"error: model\.checkpoint='.*' is invalid: .*model\.safetensors is corrupt",
    ),
]


# Each case starts an interpreter (slow): the first runs in make test, every case in make test-slow;
# the same refusals are checked in-process by test_bad_input_is_refused_before_training.
@pytest.mark.parametrize(
    ("overrides", "last_line"),
    [
        pytest.param(*c[1:], id=c[0], marks=() if i == 0 else pytest.mark.slow)
        for i, c in enumerate(CLI_CASES)
    ],
)
def test_cli_ends_with_one_line_and_exit_status_2(tmp_path, overrides: Case, last_line: str) -> None:
    out = unlearnbench_cli(tmp_path, *overrides(tmp_path))
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert re.match(last_line, lines[-1]), lines[-1]
    assert "Traceback" not in out.stderr and len(lines) <= 3, out.stderr
    assert not (tmp_path / "cache" / "models").exists()


# Bad input that Hydra finds while it composes the config (the app never runs).
HYDRA_CASES = [
    (
        "misspelled-key",
        ["forgett.ratio=0.1"],
        r"error: forgett\.ratio=0\.1 is invalid: not a key of the config; "
        r"the closest valid keys: forget\.ratio",
    ),
    (
        "unknown-key",
        ["trainer.max_epochs=-1"],
        r"error: trainer\.max_epochs=-1 is invalid: not a key of the config; "
        r"the closest valid keys: .*train\.epochs",
    ),
    (
        "misspelled-group",
        ["forgett=random"],
        r"error: forgett='random' is invalid: not a key of the config; the closest valid keys: forget\b",
    ),
    (
        "unknown-hydra-option",
        ["hydra/launcher=submitit_slrum"],
        r"error: hydra/launcher='submitit_slrum' is invalid: "
        r"one of basic, joblib, submitit_local, submitit_slurm$",
    ),
    (
        "unknown-hydra-key",
        ["hydra.launcher.partitoin=debug", "hydra/launcher=submitit_slurm"],
        r"error: hydra\.launcher\.partitoin='debug' is invalid: "
        r".*closest valid keys: hydra\.launcher\.partition",
    ),
    ("unparsable-override", ["method.gamma=[1,"], r"error: cannot parse the override 'method\.gamma=\[1,'"),
]


def run_main(monkeypatch, tmp_path: Path, *overrides: str) -> int:
    """``unlearnbench OVERRIDES`` in this process (composition errors need no subprocess)."""
    return unlearnbench_here(
        monkeypatch, f"hydra.run.dir={tmp_path / 'run'}", *overrides, cache=tmp_path / "cache"
    )


@pytest.mark.parametrize(
    ("overrides", "last_line"), [c[1:] for c in HYDRA_CASES], ids=[c[0] for c in HYDRA_CASES]
)
def test_hydra_composition_errors_end_with_one_line_and_exit_status_2(
    tmp_path, monkeypatch, capsys, overrides: list[str], last_line: str
) -> None:
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    status = run_main(monkeypatch, tmp_path, *overrides)
    err = capsys.readouterr().err
    assert status == 2, err
    lines = err.strip().splitlines()
    assert re.match(last_line, lines[-1]), lines[-1]
    assert "Traceback" not in err and len(lines) <= 3, err
    assert "HYDRA_FULL_ERROR" not in os.environ  # set only while Hydra ran
    assert not (tmp_path / "cache").exists()


def test_hydra_full_error_shows_hydras_own_report_of_an_unknown_key(tmp_path, monkeypatch) -> None:
    from hydra.errors import ConfigCompositionException

    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ConfigCompositionException, match=r"Could not override 'trainer\.max_epochs'"):
        run_main(monkeypatch, tmp_path, "trainer.max_epochs=-1")


@pytest.mark.slow  # an interpreter of its own
def test_hydra_full_error_shows_the_traceback(tmp_path) -> None:
    out = unlearnbench_cli(tmp_path, "forget.ratio=0", env={"HYDRA_FULL_ERROR": "1"})
    assert out.returncode != 0
    assert "Traceback" in out.stderr and "ConfigError: forget.ratio=0.0 is invalid" in out.stderr


def test_a_sound_checkpoint_is_the_original_model(make_cfg, tmp_path) -> None:
    """model.checkpoint: the model is loaded (not fine-tuned) as theta_0, and cached by its weights."""
    from unlearnbench.models import load_saved
    from unlearnbench.pipeline import prepare
    from unlearnbench.runtime.outputs import evaluate_splits as evaluate

    checkpoint = tiny_checkpoint(tmp_path, 5)
    overrides = ("method=original", "eval.reference=false", f"model.checkpoint={checkpoint}")
    cfg = make_cfg(*overrides, cache_dir=tmp_path / "cache")
    first = run_experiment(cfg, tmp_path / "run1")
    second = run_experiment(cfg, tmp_path / "run2")
    assert not first["original"]["from_cache"] and second["original"]["from_cache"]
    _, _, data = prepare(cfg)
    direct = evaluate(load_saved(checkpoint), data, ["test"])["test"]
    assert first["metrics"]["test"] == pytest.approx(direct)


def test_hub_class_indices_outside_the_label_set_are_named() -> None:
    """A Hugging Face ClassLabel column (indices into the loader's label names) holding -1 (unlabelled)."""
    from unlearnbench.errors import DataError
    from unlearnbench.tasks import TextDataset

    frame = pd.DataFrame({"text": ["a", "b", "c"], "label": [0, -1, 1]})
    cfg = {"text_column": "text", "label_column": "label"}
    with pytest.raises(DataError) as info:
        TextDataset.from_frame("hub", frame, cfg, ["neg", "pos"])
    assert "(rows [1]: ['-1']); allowed: class indices 0..1 of ['neg', 'pos']" in str(info.value)
