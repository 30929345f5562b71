"""The ``unlearnbench-forget`` command: a deletion request as a user makes it.

    unlearnbench-forget model.checkpoint=DIR data.path=TRAIN [data.test_path=TEST] \\
        request.ids=FILE|[FILE,...] method=deepcut output_dir=OUT [audit.reference=retrain]

Unlearns the records the request files name (several files: requests one after another, each from
the model the previous one left) from the user's own fine-tuned model, and writes ``OUT/model`` (a
complete model directory that plain transformers loads and serves, with a model card),
``OUT/audit.json`` and ``OUT/audit.md`` (:mod:`unlearnbench.audit`). A rerun with the same inputs
reuses the finished work. Config: conf/forget_request.yaml (the benchmark's config groups).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from unlearnbench.audit import audit_markdown, build_audit, sha256_file, sha256_tree
from unlearnbench.config import CONF_DIR
from unlearnbench.errors import ConfigError, UnlearnbenchError
from unlearnbench.io import atomic_dir, atomic_write_json, atomic_write_text, redact, redact_logs, stable_hash
from unlearnbench.pipeline import run_experiment
from unlearnbench.results import MODEL_DIR, read_results

log = logging.getLogger("unlearnbench")
INPUTS_FILE = "inputs.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model")
REFERENCES = ("none", "retrain")


def request_files(cfg: DictConfig) -> list[str]:
    ids = OmegaConf.to_container(cfg.request, resolve=True).get("ids")
    files = [ids] if isinstance(ids, str) else list(ids or [])
    if not files:
        raise ConfigError("request.ids", ids, "a file of sample ids, or a list of them (requests in order)")
    for f in files:
        if not Path(str(f)).is_file():
            raise ConfigError(
                "request.ids", f, "an existing file of sample ids (a json list, or one id per line)"
            )
    return [str(f) for f in files]


def check_request(cfg: DictConfig) -> None:
    """Refuse, in one line, what cannot be a deletion request: before anything is loaded."""
    reference = cfg.audit.get("reference", "none")
    if reference not in REFERENCES:
        raise ConfigError("audit.reference", reference, f"one of {', '.join(REFERENCES)}")
    checkpoint = Path(str(cfg.model.checkpoint))
    if checkpoint.is_dir() and not any((checkpoint / name).is_file() for name in TOKENIZER_FILES):
        raise ConfigError(
            "model.checkpoint",
            str(checkpoint),
            f"a model directory with its tokenizer files (one of {TOKENIZER_FILES})",
        )
    if reference == "retrain" and str(cfg.model.path) == str(cfg.model.checkpoint):
        raise ConfigError(
            "model.path",
            cfg.model.path,
            "the pretrained model model.checkpoint was fine-tuned from (audit.reference=retrain trains it)",
        )


def run_config(cfg: DictConfig, files: list[str]) -> DictConfig:
    """The run of the pipeline that serves the request: D_f from the request files, in order."""
    run = cfg.copy()
    with open_dict(run):
        run.forget = {
            "strategy": "requests",
            "files": files,
            "strict": bool(cfg.request.strict),
            "seed": cfg.seed,
            "tag": "request",
        }
        run.eval.reference = cfg.audit.reference == "retrain"
        run.save_model = True
    return run


def input_digests(cfg: DictConfig, files: list[str]) -> dict[str, Any]:
    checkpoint = Path(str(cfg.model.checkpoint))
    data = {
        str(cfg.data[k]): sha256_file(cfg.data[k])
        for k in ("path", "val_path", "test_path")
        if cfg.data.get(k)
    }
    return {
        "input_model": sha256_tree(checkpoint) if checkpoint.is_dir() else f"hub:{checkpoint}",
        "data": data,
        "requests": {f: sha256_file(f) for f in files},
    }


def forget_request(cfg: DictConfig, out: Path, run_dir: Path) -> dict[str, Any]:
    check_request(cfg)
    files = request_files(cfg)
    run = run_config(cfg, files)
    inputs = input_digests(cfg, files)
    what = stable_hash({"inputs": inputs, "config": OmegaConf.to_container(run, resolve=True)}, 32)
    stamp = run_dir / INPUTS_FILE
    results = read_results(run_dir)
    if results is not None and stamp.is_file() and stamp.read_text().strip() == what:
        log.info("the same request with the same inputs is done: its results are reused (%s)", run_dir)
    else:
        stamp.unlink(missing_ok=True)
        results = run_experiment(run, run_dir)
        atomic_write_text(stamp, what + "\n")
    with atomic_dir(out / MODEL_DIR) as tmp:
        shutil.copytree(run_dir / MODEL_DIR, tmp, dirs_exist_ok=True)
    requests = (results.get("design") or {}).get("requests") or []
    audit = build_audit(results, requests, inputs, sha256_tree(out / MODEL_DIR), cfg.audit.reference)
    atomic_write_json(out / "audit.json", audit)
    atomic_write_text(out / "audit.md", audit_markdown(audit))
    log.info("model: %s; audit: %s", out / MODEL_DIR, out / "audit.md")
    return audit


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="forget_request")
def hydra_main(cfg: DictConfig) -> None:
    redact_logs()
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        forget_request(cfg, Path(str(cfg.output_dir)), run_dir)
    except UnlearnbenchError as exc:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    hydra_main()


if __name__ == "__main__":
    main()
