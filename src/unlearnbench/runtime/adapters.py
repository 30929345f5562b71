"""Parameter-efficient fine-tuning: with ``model.adapter=lora`` every fit (the original's, the
retrained models', the unlearning itself) trains low-rank adapters (peft's LoRA, on
``model.lora.target_modules``) and the classification head, and leaves every other weight of the
model as it was; after the fit the adapters are merged, so stored and exported models are plain
transformers models (no peft needed to load them)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from unlearnbench.errors import ConfigError

ADAPTERS = ("none", "lora")


@dataclass(frozen=True)
class LoraSettings:
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.1
    target_modules: tuple[str, ...] = ("query", "value")

    def spec(self) -> dict[str, Any]:
        return {"adapter": "lora", **asdict(self), "target_modules": list(self.target_modules)}


def adapter_settings(model_cfg: Mapping[str, Any]) -> LoraSettings | None:
    """``model.adapter`` (none | lora) and ``model.lora.*``, checked; None for full fine-tuning."""
    adapter = model_cfg.get("adapter", "none") or "none"
    if adapter not in ADAPTERS:
        raise ConfigError("model.adapter", adapter, f"one of {', '.join(ADAPTERS)}")
    if adapter == "none":
        return None
    lora = dict(model_cfg.get("lora") or {})
    unknown = sorted(set(lora) - set(LoraSettings.__dataclass_fields__))
    if unknown:
        raise ConfigError(
            f"model.lora.{unknown[0]}",
            lora[unknown[0]],
            f"a key of {list(LoraSettings.__dataclass_fields__)}",
        )
    settings = LoraSettings(
        **{**lora, "target_modules": tuple(lora.get("target_modules") or LoraSettings.target_modules)}
    )
    if not isinstance(settings.r, int) or settings.r < 1:
        raise ConfigError("model.lora.r", settings.r, "a positive integer rank")
    if not 0.0 <= float(settings.dropout) < 1.0:
        raise ConfigError("model.lora.dropout", settings.dropout, "a number in [0, 1)")
    if float(settings.alpha) <= 0:
        raise ConfigError("model.lora.alpha", settings.alpha, "a positive scale")
    return settings


def trainable_parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@contextmanager
def adapted(module: Any, settings: LoraSettings | None) -> Iterator[None]:
    """Within the block, ``module.model`` is the model with fresh LoRA adapters (only they and the
    head train); after it, the adapters merged into a plain model again."""
    if settings is None:
        yield
        return
    from peft import LoraConfig, get_peft_model

    base = module.model
    token = type(base).__name__.endswith("ForTokenClassification")
    config = LoraConfig(
        task_type="TOKEN_CLS" if token else "SEQ_CLS",
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
    )
    try:
        wrapped = get_peft_model(base, config)
    except ValueError as exc:  # peft names the missing module
        raise ConfigError(
            "model.lora.target_modules", list(settings.target_modules), f"modules of this model ({exc})"
        ) from None
    module.model = wrapped
    try:
        yield
    finally:
        module.model = wrapped.merge_and_unload()
