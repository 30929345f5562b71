"""``ssd``: Selective Synaptic Dampening (Foster, Schoepf and Brintrup, AAAI 2024), retrain-free.

This module owns the importance estimate (a diagonal Fisher of the loss over a set of samples), the
dampening rule and the procedure that applies them to the original model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf
from torch import nn

from unlearnbench.data import UnlearnDataModule
from unlearnbench.distributed import all_reduce_sum
from unlearnbench.errors import ConfigError
from unlearnbench.methods.base import MethodParams, Procedure, register
from unlearnbench.runtime import FitStats, RunContext, UnlearnOutcome, parse_params

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class SsdParams(MethodParams):
    alpha: float  # selection weighting: dampen where I_f > alpha * I_D
    lambda_: float  # dampening constant (``lambda`` in the config: a Python keyword here)
    batch_size: int
    data_batches: int = -1  # batches of D that estimate I_D (-1: all of D)
    forget_batches: int = -1  # batches of D_f that estimate I_f (-1: all of D_f)

    def validate(self, prefix: str) -> None:
        for key, value in (("alpha", self.alpha), ("lambda", self.lambda_)):
            if not (0 < value < float("inf")):
                raise ConfigError(f"{prefix}.{key}", value, "a positive finite number")
        if self.batch_size < 1:
            raise ConfigError(f"{prefix}.batch_size", self.batch_size, "a positive integer")
        for key in ("data_batches", "forget_batches"):
            value = getattr(self, key)
            if value == 0 or value < -1:
                raise ConfigError(f"{prefix}.{key}", value, "a positive number of batches, or -1 for all")


def importance(
    model: nn.Module, loader: Any, data: UnlearnDataModule, max_batches: int = -1
) -> tuple[dict[str, torch.Tensor], int, int]:
    """The diagonal Fisher estimate of SSD: the squared gradient of the mean loss of a batch, averaged
    over batches (of all processes under DDP),

        I[theta] = 1/K sum_k (d/d theta CE(B_k))^2

    CE is the mean cross-entropy over the rows a loss reads (the task decides). The model is in eval
    mode: the importance is that of the model as it predicts, and the same on every call. Returns
    (importance per parameter name, batches read, samples read), counts over all processes."""
    model.eval()
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    total = {name: torch.zeros_like(p) for name, p in params.items()}
    device = next(model.parameters()).device
    batches = samples = 0
    for batch in loader:
        if 0 <= max_batches <= batches:
            break
        model.zero_grad(set_to_none=True)
        labels = batch["labels"].to(device)
        logits = model(
            input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
        ).logits
        every = torch.ones(labels.shape[0], dtype=torch.bool, device=device)
        data.task.masked_ce(logits, labels, every).backward()
        for name, p in params.items():
            if p.grad is not None:
                total[name] += p.grad.detach().pow(2)
        batches += 1
        samples += int(labels.shape[0])
    model.zero_grad(set_to_none=True)
    if dist.is_available() and dist.is_initialized():  # every process dampens the same parameters
        for value in total.values():
            dist.all_reduce(value)
    batches, samples = all_reduce_sum(batches), all_reduce_sum(samples)
    return {name: value / max(batches, 1) for name, value in total.items()}, batches, samples


def dampen(
    params: Mapping[str, torch.Tensor],
    data_importance: Mapping[str, torch.Tensor],
    forget_importance: Mapping[str, torch.Tensor],
    alpha: float,
    lam: float,
) -> dict[str, Any]:
    """SSD's update, in place: for every parameter theta with I_f(theta) > alpha * I_D(theta),

        theta <- beta * theta,   beta = min(lam * I_D(theta) / I_f(theta), 1)

    Every other parameter is left bit for bit as it was. Returns how many were selected (of how
    many) and the mean beta of the selected."""
    selected, count, beta_sum = 0, 0, 0.0
    with torch.no_grad():
        for name, p in params.items():
            d, f = data_importance[name], forget_importance[name]
            chosen = f > alpha * d
            count += p.numel()
            n = int(chosen.sum())
            if n == 0:
                continue
            # f > alpha * d >= 0 where chosen, so the ratio is finite (0 where I_D is 0).
            beta = (lam * d[chosen] / f[chosen]).clamp(max=1.0)
            p[chosen] = p[chosen] * beta.to(p.dtype)
            selected += n
            beta_sum += float(beta.sum())
    return {
        "selected": selected,
        "parameters": count,
        "selected_fraction": selected / max(count, 1),
        "mean_beta": beta_sum / selected if selected else None,
    }


@register("ssd")
class Ssd(Procedure):
    """SSD (Foster, Schoepf and Brintrup, "Fast Machine Unlearning Without Retraining Through
    Selective Synaptic Dampening", AAAI 2024). No training: the parameters far more important to
    D_f than to D are scaled down.

        I_D = E_{B in D} (grad CE(B))^2,   I_f = E_{B in D_f} (grad CE(B))^2   (:func:`importance`)
        theta <- min(lambda * I_D / I_f, 1) * theta   where I_f > alpha * I_D   (:func:`dampen`)

    for every parameter (embeddings, LayerNorms and the head included), from theta_0. Defaults are
    the paper's, alpha = 10 and lambda = 1.

    I_D is over D, the whole training set, as in the paper: it is a property of the trained model
    alone, so it could be computed once before any request. Here every run computes it and counts it
    in the cost (an upper bound on SSD's cost); over D_r instead it would have to be recomputed for
    every request. ``data_batches`` / ``forget_batches`` cap the batches (seeded random batches of
    ``batch_size``; per process under DDP) that estimate the two; -1 reads all. The cost is the
    wall time of both estimates and the dampening; there are no optimiser steps (``steps`` 0), and
    ``samples`` counts the samples whose gradients were taken.
    """

    Params: ClassVar[type] = SsdParams

    @classmethod
    def parse_params(cls, cfg: Mapping[str, Any] | DictConfig) -> SsdParams:
        values = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
        if "lambda" in values:
            values["lambda_"] = values.pop("lambda")
        try:
            return parse_params(cls.Params, values, "method")
        except ConfigError as exc:
            if ".lambda_" not in exc.key:
                raise
            raise ConfigError(exc.key.replace(".lambda_", ".lambda"), exc.value, exc.allowed) from None

    @classmethod
    def run(cls, ctx: RunContext, params: SsdParams) -> UnlearnOutcome:
        data = ctx.data
        model = ctx.on_eval_device(ctx.original().model)
        seed = ctx.unlearn_seed
        start = time.perf_counter()
        i_data, data_batches, data_samples = importance(
            model, data.index_loader(data.splits.train, params.batch_size, seed), data, params.data_batches
        )
        after_data = time.perf_counter()
        i_forget, forget_batches, forget_samples = importance(
            model, data.index_loader(data.splits.forget, params.batch_size, seed), data, params.forget_batches
        )
        after_forget = time.perf_counter()
        report = dampen(dict(model.named_parameters()), i_data, i_forget, params.alpha, params.lambda_)
        end = time.perf_counter()
        stats = FitStats(seconds=end - start, steps=0, samples=data_samples + forget_samples)
        info = {
            **report,
            "importance_batches": {"data": data_batches, "forget": forget_batches},
            "importance_samples": {"data": data_samples, "forget": forget_samples},
            "seconds": {
                "data_importance": after_data - start,
                "forget_importance": after_forget - after_data,
                "dampening": end - after_forget,
            },
        }
        log.info(
            "[ssd] dampened %d of %d parameters (%.3g %%) in %.1fs",
            report["selected"],
            report["parameters"],
            100 * report["selected_fraction"],
            stats.seconds,
        )
        return UnlearnOutcome(model, stats, info)
