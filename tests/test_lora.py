"""LoRA (``model.adapter=lora``): only the adapters and the head train, every other weight stays
bit for bit, and what is stored and exported is a plain model with the adapters merged."""

from __future__ import annotations

import torch
from transformers import AutoModelForSequenceClassification, BertConfig

from unlearnbench.pipeline import prepare, run_experiment
from unlearnbench.runtime import RunContext
from unlearnbench.runtime.adapters import LoraSettings, adapted
from unlearnbench.runtime.fit import TrainingModule
from unlearnbench.runtime.params import TrainParams


def tiny() -> torch.nn.Module:
    config = BertConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=3,
    )
    return AutoModelForSequenceClassification.from_config(config)


def test_only_adapters_and_head_train_and_the_base_stays_bit_identical() -> None:
    torch.manual_seed(0)
    module = TrainingModule(tiny(), TrainParams(lr=1e-2))
    base = {k: v.clone() for k, v in module.model.state_dict().items()}
    with adapted(module, LoraSettings(r=4, target_modules=("query", "value"))):
        trainable = {n for n, p in module.model.named_parameters() if p.requires_grad}
        assert trainable and all("lora_" in n or "classifier" in n for n in trainable)
        optimizer = torch.optim.AdamW([p for p in module.model.parameters() if p.requires_grad], lr=1e-2)
        for _ in range(5):
            ids = torch.randint(0, 64, (4, 8))
            loss = module.model(input_ids=ids, labels=torch.tensor([0, 1, 2, 0])).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        frozen = module.model.get_base_model().state_dict()
        for key, before in base.items():
            if "classifier" in key or key not in frozen:
                continue  # the head trains; the wrapped target layers are checked below by their base weight
            assert torch.equal(frozen[key], before), key
        for name, layer in module.model.get_base_model().named_modules():
            if hasattr(layer, "base_layer"):
                assert torch.equal(
                    layer.base_layer.weight, base[f"{name.removeprefix('base_model.model.')}.weight"]
                )
    merged = module.model
    assert type(merged).__name__ == "BertForSequenceClassification"  # a plain model again
    assert not any("lora" in k for k in merged.state_dict())
    changed = [k for k in base if not torch.equal(base[k], merged.state_dict()[k])]
    assert changed and all("query" in k or "value" in k or "classifier" in k for k in changed)


def test_a_lora_run_stores_and_exports_a_plain_model_under_its_own_key(make_cfg, tmp_path) -> None:
    cfg = make_cfg(
        "method=finetune",
        "method.max_steps=2",
        "model.adapter=lora",
        "save_model=true",
        "data.max_samples=120",
    )
    results = run_experiment(cfg, tmp_path / "lora")
    reloaded = AutoModelForSequenceClassification.from_pretrained(
        tmp_path / "lora" / "model"
    )  # no peft needed
    assert type(reloaded).__name__ == "BertForSequenceClassification"
    full = make_cfg("method=finetune", "data.max_samples=120")
    spec = lambda c: RunContext(c, prepare(c)[2], None, tmp_path).model_spec("original", ["x"], None).key()  # noqa: E731
    assert spec(cfg) != spec(full)  # a LoRA-trained original is another model
    assert results["cost"]["steps"] == 2
    # what the optimiser updated: the adapters and the head, a small share of the model
    assert 0 < results["cost"]["trainable_parameters"] < sum(p.numel() for p in reloaded.parameters()) / 5
