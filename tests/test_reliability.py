"""Crashes survived, nothing lost, nothing leaked: atomic outputs that a later run does not trust when
damaged, the same numbers from the same config and seed, and no secret or foreign code let in."""

from __future__ import annotations

import ast
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from transformers import AutoModelForSequenceClassification, BertConfig

import unlearnbench
from tests.conftest import TINY
from unlearnbench.cli.run import run_job
from unlearnbench.config import CONF_DIR, compose
from unlearnbench.data.tokenize import read_encoding
from unlearnbench.errors import ConfigError
from unlearnbench.io import REDACTED, RedactSecrets, atomic_dir, atomic_write_json
from unlearnbench.models import build_pretrained, load_saved
from unlearnbench.pipeline import prepare, run_experiment
from unlearnbench.report import load_runs
from unlearnbench.results import ERROR_FILE, RESULTS_FILE, is_complete
from unlearnbench.runtime import ModelStore
from unlearnbench.runtime.outputs import cached_outputs, outputs_path
from unlearnbench.runtime.specs import BaseModelSpec, DataSpec, ModelSpec
from unlearnbench.tasks import Predictions

SRC = Path(unlearnbench.__file__).resolve().parent
REPO = SRC.parents[1]


# ------------------------------------------------------ item 2: written atomically, not trusted when damaged
def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def drop_section(path: Path, key: str = "metrics") -> None:
    results = json.loads(path.read_text())
    del results[key]
    path.write_text(json.dumps(results))


def test_a_truncated_or_partial_results_json_is_not_trusted_and_is_redone(make_cfg, tmp_path) -> None:
    cfg = make_cfg("method=original", "eval.reference=false")
    job = tmp_path / "job"
    run_job(cfg, job, multirun=True)
    results = job / RESULTS_FILE
    first = json.loads(results.read_text())
    assert is_complete(job)
    stamp = results.stat().st_mtime_ns
    run_job(cfg, job, multirun=True)
    assert results.stat().st_mtime_ns == stamp  # a complete job is skipped

    for damage in (truncate, drop_section, lambda p: p.write_text("")):
        damage(results)
        assert not is_complete(job)
        frame, failures = load_runs([tmp_path])  # the report lists it as a failure, does not crash
        assert frame.empty and [f["type"] for f in failures] == ["BadResults"]
        run_job(cfg, job, multirun=True)  # the sweep's resume redoes it
        assert is_complete(job) and results.stat().st_mtime_ns != stamp
        assert json.loads(results.read_text())["metrics"] == first["metrics"]
        stamp = results.stat().st_mtime_ns


def tiny_model(num_labels: int = 3):
    config = BertConfig(
        vocab_size=64, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
        num_labels=num_labels,
    )  # fmt: skip
    return AutoModelForSequenceClassification.from_config(config)


def tiny_spec() -> ModelSpec:
    data = DataSpec(fingerprint="tiny", task="sequence_classification", max_length=8)
    base = BaseModelSpec(source="random", location=None, tokenizer="none|64")
    return ModelSpec(
        kind="original", data=data, base=base, recipe=None, samples="all", seed=0, precision="32"
    )


def damage_weights(entry: Path) -> None:
    truncate(entry / "model.safetensors", 0.7)


def damage_meta(entry: Path) -> None:
    truncate(entry / "meta.json", 0.5)


def lose_meta(entry: Path) -> None:  # a crash before meta.json, which is written last
    (entry / "meta.json").unlink()


def foreign_meta(entry: Path) -> None:  # an entry copied in under the wrong name
    meta = json.loads((entry / "meta.json").read_text())
    (entry / "meta.json").write_text(json.dumps({**meta, "key": "0123456789abcdef"}))


def lose_config(entry: Path) -> None:
    (entry / "config.json").unlink()


@pytest.mark.parametrize("damage", [damage_weights, damage_meta, lose_meta, foreign_meta, lose_config])
def test_a_damaged_cache_entry_is_not_trusted_and_is_trained_again(tmp_path, damage) -> None:
    cache, spec, calls = ModelStore(tmp_path), tiny_spec(), []

    def train(work_dir: Path):
        calls.append(work_dir)
        return tiny_model(), {"fit": {"seconds": 1.0}}

    first = cache.get_or_train(spec, train)
    assert not first.hit and len(calls) == 1
    assert cache.get_or_train(spec, train).hit and len(calls) == 1
    damage(first.path)
    again = cache.get_or_train(spec, train)
    assert not again.hit and len(calls) == 2  # trained again, not loaded
    hit = cache.get_or_train(spec, train)
    assert hit.hit and len(calls) == 2
    assert all(
        torch_equal(a, b) for a, b in zip(again.model.parameters(), hit.model.parameters(), strict=True)
    )


def torch_equal(a, b) -> bool:
    return bool((a.detach() == b.detach()).all())


def test_damaged_cached_outputs_are_computed_again(tmp_path) -> None:
    indices = np.array([3, 1, 2])
    calls = []

    def compute() -> Predictions:
        calls.append(1)
        return Predictions(np.ones((3, 2), np.float32), np.zeros(3, np.int64), np.array([1, 2, 3]))

    _, stored = cached_outputs(tmp_path, indices, compute)
    assert not stored and len(calls) == 1
    assert cached_outputs(tmp_path, indices, compute)[1] and len(calls) == 1
    path = outputs_path(tmp_path, indices)
    truncate(path, 0.6)
    again, stored = cached_outputs(tmp_path, indices, compute)
    assert not stored and len(calls) == 2 and np.array_equal(again.indices, [1, 2, 3])
    Predictions(np.ones((2, 2), np.float32), np.zeros(2, np.int64), np.array([1, 2])).save(path)  # partial
    assert not cached_outputs(tmp_path, indices, compute)[1] and len(calls) == 3


def test_a_damaged_token_cache_is_rebuilt(tmp_path) -> None:
    path = tmp_path / "tokens.parquet"
    assert read_encoding(path, 3) is None
    path.write_bytes(b"PAR1 not really")
    assert read_encoding(path, 3) is None
    pd.DataFrame({"input_ids": [[1, 2], [3]]}).to_parquet(path)
    assert read_encoding(path, 3) is None  # a file of another length is not this data's
    assert read_encoding(path, 2) == {"input_ids": [[1, 2], [3]]}


KILL_WRITER = """
import sys
from unlearnbench.io import atomic_write_json
payload = {"schema_version": 2, "rows": [list(range(200))] * 2000}
for i in range(10**6):
    atomic_write_json(sys.argv[1], {**payload, "i": i})
    print(i, flush=True)
"""


def test_a_killed_writer_leaves_the_old_file_or_the_new_one_never_half(tmp_path) -> None:
    path = tmp_path / "results.json"
    env = {**os.environ, "PYTHONPATH": str(SRC.parent)}
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", KILL_WRITER, str(path)], stdout=subprocess.PIPE, env=env, text=True
        )
        proc.stdout.readline()  # one write done: the next ones are in flight
        time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert json.loads(path.read_text())["schema_version"] == 2  # whole
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "results.json"]
    assert all(p.startswith(".results.json.") for p in leftovers)  # only unnamed temp files


def test_an_interrupted_directory_write_keeps_the_old_directory(tmp_path) -> None:
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "config.json").write_text("{}")
    with pytest.raises(KeyboardInterrupt), atomic_dir(target) as tmp:
        (tmp / "config.json").write_text('{"half": ')
        raise KeyboardInterrupt
    assert (target / "config.json").read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


# Every place that writes a file, and why it is safe. A new writer must be made atomic (io.atomic_write_*,
# io.atomic_dir, io.atomic_path) or write into a directory that is, and be added here.
WRITERS = {
    ("io.py", "atomic_write_text"): "temp file + fsync + rename",
    ("cli/tuned.py", "save_tuned"): "atomic_write_text",
    ("tasks/predictions.py", "Predictions.save"): "inside atomic_path",
    ("evaluation/files.py", "write_parquet"): "inside atomic_path",
    ("evaluation/files.py", "write_embeddings"): "inside atomic_path",
    ("data/tokenize.py", "encode_cached"): "temp file + rename, under a lock",
    ("data/embedded.py", "fetch_spam"): "unpacked in a temp dir, renamed into place, .complete last",
    ("report/plots.py", "_save"): "temp file + rename",
    ("models.py", "save_model"): "callers pass a temp dir: the store's work dir, or io.atomic_dir",
    ("models.py", "export_model"): "callers pass a temp dir (io.atomic_dir)",
    ("pipeline.py", "write_memorization"): "inside atomic_path",
    ("evaluation/quality.py", "quality"): "inside atomic_path",
    ("methods/sisa.py", "SisaEnsemble.save_pretrained"): "called by save_model (above)",
    ("runtime/memory.py", "_reset_rss_peak"): "writes /proc/self/clear_refs, not a file",
    ("bench/scaling.py", "scaling_plot"): "inside atomic_path",
}
WRITE_CALLS = {"write_text", "write_bytes", "to_parquet", "savez", "savez_compressed", "save_pretrained"}
WRITE_CALLS |= {"savefig", "write_table", "dump", "to_csv", "to_json", "to_pickle", "write_bytes"}


def writer_sites() -> set[tuple[str, str]]:
    """(file, function) of every call in the package that writes a file."""
    found = set()
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())

        def visit(node, scope: list[str], path=path) -> None:
            for child in ast.iter_child_nodes(node):
                inner = scope
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    inner = [*scope, child.name]
                if isinstance(child, ast.Call) and is_write(child):
                    found.add((str(path.relative_to(SRC)), ".".join(s for s in scope)))
                visit(child, inner)

        visit(tree, [])
    return found


def is_write(call: ast.Call) -> bool:
    func, name = call.func, call_name(call)
    if name in ("open", "fdopen"):
        mode = call.args[1] if len(call.args) > 1 else keyword(call, "mode")
        return isinstance(mode, ast.Constant) and any(c in str(mode.value) for c in "wax+")
    if name == "save":  # torch.save, np.save (not Predictions.save, which is atomic itself)
        return getattr(getattr(func, "value", None), "id", "") in ("torch", "np", "numpy")
    if name in ("to_csv", "to_json"):  # with no path they return the text (written atomically)
        return bool(call.args) or keyword(call, "path_or_buf") is not None
    return name in WRITE_CALLS


def test_every_file_writer_is_atomic() -> None:
    sites = writer_sites()
    assert sites <= set(WRITERS), (
        f"writers not audited (make them atomic, then list them): {sites - set(WRITERS)}"
    )


# ------------------------------------------------------ item 4: determinism
def numbers(obj, prefix: str = "") -> dict[str, float]:
    """Every number in a nested dict, by its path."""
    if isinstance(obj, dict):
        return {k: v for key, val in obj.items() for k, v in numbers(val, f"{prefix}{key}.").items()}
    if isinstance(obj, list):
        return {k: v for i, val in enumerate(obj) for k, v in numbers(val, f"{prefix}{i}.").items()}
    if isinstance(obj, int | float) and not isinstance(obj, bool):
        return {prefix.rstrip("."): float(obj)}
    return {}


def test_same_config_and_seed_give_the_same_forget_ids_and_metrics(make_cfg, tmp_path) -> None:
    """Two runs with separate caches (the original and the retrained model are trained twice)."""
    runs = []
    for i in range(2):
        cfg = make_cfg("method=deepcut", "train.epochs=3", "seed=3", cache_dir=tmp_path / f"cache{i}")
        results = run_experiment(cfg, tmp_path / f"run{i}")
        assert not results["original"]["from_cache"] and not results["reference"]["from_cache"]
        runs.append((results, json.loads((tmp_path / f"run{i}" / "forget_ids.json").read_text())))
    (a, ids_a), (b, ids_b) = runs
    assert ids_a == ids_b and len(ids_a) == a["sizes"]["forget"]
    for section in ("sizes", "metrics", "reference", "mia", "latent", "method_info"):
        na, nb = numbers(a[section]), numbers(b[section])
        assert na.keys() == nb.keys()
        bad = {k: (na[k], nb[k]) for k in na if not math.isclose(na[k], nb[k], rel_tol=0, abs_tol=1e-6)}
        assert not bad, f"{section} differs: {bad}"
    assert a["timing"]["steps"] == b["timing"]["steps"]
    pa, pb = (pd.read_parquet(tmp_path / f"run{i}" / "predictions.parquet") for i in range(2))
    assert np.allclose(np.stack(pa.probs), np.stack(pb.probs), rtol=0, atol=1e-6)


# ------------------------------------------------------ item 5: security
def calls_in(paths) -> list[tuple[Path, ast.Call]]:
    out = []
    for path in paths:
        out += [(path, n) for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call)]
    return out


def keyword(call: ast.Call, name: str):
    """The value of a constant keyword argument, the node of another, None when absent."""
    found = next((k.value for k in call.keywords if k.arg == name), None)
    return found.value if isinstance(found, ast.Constant) else found


def call_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def test_the_source_never_unpickles() -> None:
    """torch.load only with weights_only=True; no pickle; np.load never with allow_pickle (off by
    default); models from safetensors (load_saved) and every from_pretrained with an explicit
    trust_remote_code."""
    files = [*SRC.rglob("*.py"), *(REPO / "scripts").rglob("*.py"), *(REPO / "tests").rglob("*.py")]
    bad = []
    for path, call in calls_in(files):
        name, where = call_name(call), f"{path.relative_to(REPO)}:{call.lineno}"
        module = getattr(call.func, "value", None)
        owner = getattr(module, "id", "")
        if name == "load" and owner == "torch" and keyword(call, "weights_only") is not True:
            bad.append(f"{where}: torch.load without weights_only=True")
        if owner in ("pickle", "dill", "cloudpickle", "joblib") and name in ("load", "loads"):
            bad.append(f"{where}: {owner}.{name}")
        if name == "load" and owner in ("np", "numpy") and keyword(call, "allow_pickle") not in (None, False):
            bad.append(f"{where}: np.load with allow_pickle")
        if (
            name == "from_pretrained"
            and path.is_relative_to(SRC)
            and keyword(call, "trust_remote_code") is None
        ):
            bad.append(f"{where}: from_pretrained without an explicit trust_remote_code")
    assert not bad, "\n".join(bad)
    source = (SRC / "models.py").read_text()
    assert "use_safetensors=True" in source and "trust_remote_code=False" in source


def test_model_configs_never_trust_remote_code() -> None:
    # as composed (the shared keys come from conf/model/base/), and no file of its own turns it on
    for path in sorted((Path(CONF_DIR) / "model").glob("*.yaml")):
        assert OmegaConf.load(path).get("trust_remote_code", False) is False, path.name
        assert compose([f"model={path.stem}"], resolve=False).model.trust_remote_code is False, path.name


EVIL_CODE = """
import pathlib
pathlib.Path(__file__).with_name("RAN").write_text("the model's code ran")
from transformers import PretrainedConfig
class EvilConfig(PretrainedConfig):
    model_type = "evilbert"
"""


def test_a_models_own_code_never_runs_unless_trust_remote_code_is_true(make_cfg, tmp_path) -> None:
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "evil.py").write_text(EVIL_CODE)
    auto_map = {"AutoConfig": "evil.EvilConfig", "AutoModelForSequenceClassification": "evil.EvilModel"}
    (evil / "config.json").write_text(json.dumps({"model_type": "evilbert", "auto_map": auto_map}))
    for tokenizer in ("embedded", "null"):  # refused before any training, whoever tokenizes
        with pytest.raises(ConfigError, match=r"model\.trust_remote_code=False .*true to run the code"):
            overrides = ("model=hf", f"model.path={evil}", f"model.tokenizer={tokenizer}")
            prepare(make_cfg(*overrides, cache_dir=tmp_path / "cache"))
    cfg = {"source": "hub", "path": str(evil), "trust_remote_code": False}
    with pytest.raises(ConfigError, match=r"model\.trust_remote_code"):
        build_pretrained(cfg, 3, 64)
    with pytest.raises(ValueError, match="trust_remote_code"):  # no interactive prompt either
        load_saved(evil)
    assert not (evil / "RAN").exists()


SECRETS = {
    "WANDB_API_KEY": "wandb-fake-0123456789abcdef0123456789abcdef",
    "HF_TOKEN": "hf_fakeTokenAbCdEfGhIjKlMnOpQrStUv",
    "MY_SERVICE_PASSWORD": "correct-horse-battery-staple-42",
}


def test_no_secret_reaches_the_run_dir(tmp_path) -> None:
    """A real run of the command with secrets in its environment: no file under the run dir (results,
    predictions, logs, the .hydra config dumps) holds one."""
    run_dir = tmp_path / "run"
    extra = ["logger=wandb"] if (Path(CONF_DIR) / "logger" / "wandb.yaml").exists() else ["logger=csv"]
    cmd = [
        str(Path(sys.executable).parent / "unlearnbench"),
        *TINY,
        "method=finetune",
        "train.epochs=2",
        "save_model=true",
        *extra,
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"hydra.run.dir={run_dir}",
    ]
    env = {**os.environ, **SECRETS, "PYTHONPATH": str(SRC.parent), "WANDB_MODE": "offline"}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert {".hydra/config.yaml", ".hydra/hydra.yaml", "results.json", "predictions.parquet"} <= {
        str(p.relative_to(run_dir)) for p in files
    }
    assert any(p.suffix == ".log" for p in files) and (run_dir / "model" / "model.safetensors").exists()
    for path in files:
        blob = path.read_bytes()
        for name, value in SECRETS.items():
            assert value.encode() not in blob, f"{name} written into {path.relative_to(run_dir)}"
    for value in SECRETS.values():
        assert value not in out.stdout + out.stderr


def test_error_records_and_logs_redact_secrets(make_cfg, tmp_path, monkeypatch) -> None:
    secret = "s3cr3t-token-value-7a1b9"
    monkeypatch.setenv("SOME_SERVICE_TOKEN", secret)
    cfg = make_cfg("data=local", f"data.path={tmp_path / secret / 'data.csv'}", cache_dir=tmp_path / "cache")
    run_job(cfg, tmp_path / "job", multirun=True)  # a failed job records its error
    record = (tmp_path / "job" / ERROR_FILE).read_text()
    assert secret not in record and REDACTED in record and "data.path" in record
    atomic_write_json(tmp_path / "x.json", {"note": f"token={secret}"})
    assert secret not in (tmp_path / "x.json").read_text()
    record = logging.LogRecord("x", 20, __file__, 1, "connecting with %s", (secret,), None)
    assert RedactSecrets().filter(record) and record.getMessage() == f"connecting with {REDACTED}"
