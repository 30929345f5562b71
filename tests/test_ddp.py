"""DDP on 2 CPU processes (gloo): every method runs, each rank trains on its own share of every batch
stream with the same number of steps, rank 0 alone evaluates (full splits, once) and writes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from unlearnbench import distributed, pipeline
from unlearnbench.data.loaders import ForgetRetainBatchSampler
from unlearnbench.methods import METHODS

DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]


def _ranks_run_every_method(base: dict[str, Any], cfgs: dict[str, dict], out_dir: str) -> None:
    """One DDP rank: run each method's config, recording every fit's batches and every file written."""
    rank = distributed.process_info().rank
    record: dict[str, Any] = {"fits": [], "writes": [], "returned": {}}
    fit, write = pipeline.RunContext.fit, pipeline.atomic_write_json

    def recording_fit(self, module, loader, *args, **kwargs):
        seen = list(loader)  # what this rank's sampler yields (the same plan the fit then takes)
        batches = [batch["index"].tolist() for batch in seen]
        is_forget = [batch["is_forget"].tolist() for batch in seen] if "is_forget" in seen[0] else None
        record["fits"].append({"method": method, "batches": batches, "is_forget": is_forget})
        return fit(self, module, loader, *args, **kwargs)

    def recording_write(path, obj):
        record["writes"].append(str(path))
        return write(path, obj)

    pipeline.RunContext.fit = recording_fit
    pipeline.atomic_write_json = recording_write
    for method, cfg in cfgs.items():
        result = pipeline.run_experiment(OmegaConf.create(cfg), Path(out_dir) / method)
        record["returned"][method] = sorted(result)
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(record))


# make test: DeepCUT (a paired loss over dropout views) and a procedure (SISA); make test-slow: every method
@pytest.mark.parametrize(
    "methods",
    [
        pytest.param(["deepcut", "sisa"], id="two-kinds"),
        pytest.param(sorted(METHODS), id="every-method", marks=pytest.mark.slow),
    ],
)
def test_every_method_runs_on_two_gloo_processes(methods: list[str], make_cfg, tmp_path) -> None:
    cfgs = {
        m: OmegaConf.to_container(make_cfg(*DDP, f"method={m}", cache_dir=tmp_path / "cache"), resolve=True)
        for m in methods
    }
    base = make_cfg(*DDP, cache_dir=tmp_path / "cache")
    distributed.launch(_ranks_run_every_method, base, cfgs, str(tmp_path))

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for method in methods:
        run = tmp_path / method
        results = json.loads((run / "results.json").read_text())
        # rank 0 returns and writes the results; rank 1 neither
        assert ranks[0]["returned"][method] and not ranks[1]["returned"][method]
        assert str(run / "results.json") in ranks[0]["writes"]
        assert not ranks[1]["writes"], ranks[1]["writes"][:3]
        # evaluation covers each split exactly once
        sizes = results["sizes"]
        frame = pd.read_parquet(run / "predictions.parquet")
        for split in ("forget", "retain", "test"):
            assert results["metrics"][split]["n"] == sizes[split], (method, split)
            ids = frame.loc[frame["split"] == split, "sample_id"]
            assert len(ids) == sizes[split] and ids.is_unique, (method, split)

    # every fit: the same number of steps on both ranks, and disjoint shares that cover the stream
    assert len(ranks[0]["fits"]) == len(ranks[1]["fits"]) > len(methods)
    for fit0, fit1 in zip(ranks[0]["fits"], ranks[1]["fits"], strict=True):
        assert fit0["method"] == fit1["method"]
        assert len(fit0["batches"]) == len(fit1["batches"]) > 0, fit0["method"]
        if fit0["is_forget"] is None:  # a plain shuffled split: DistributedSampler pads at most 1 sample
            seen0 = [i for b in fit0["batches"] for i in b]
            seen1 = [i for b in fit1["batches"] for i in b]
            assert len(set(seen0) & set(seen1)) <= 1, fit0["method"]
        else:  # paired forget/retain batches: the forget parts are the rank's own share
            forget = [
                {
                    i
                    for b, f in zip(fit["batches"], fit["is_forget"], strict=True)
                    for i, x in zip(b, f, strict=True)
                    if x
                }
                for fit in (fit0, fit1)
            ]
            assert forget[0] and forget[1], fit0["method"]
            assert len(forget[0] & forget[1]) <= 1, fit0["method"]  # the wrap-around pad at most


@pytest.mark.parametrize("n_forget, batch", [(14, 4), (16, 4), (3, 8), (1, 2)])
def test_paired_sampler_gives_each_rank_its_share(n_forget: int, batch: int) -> None:
    rng = np.random.default_rng(0)
    forget, retain = rng.integers(0, 3, n_forget), rng.integers(0, 3, 50)
    shares = [
        list(ForgetRetainBatchSampler(forget, retain, batch, 6, seed=1, rank=r, world_size=2)) for r in (0, 1)
    ]
    share = math.ceil(n_forget / 2)
    assert len(shares[0]) == len(shares[1]) == math.ceil(share / batch)  # same steps on each rank
    seen = [[p for step in share for p in step if p < n_forget] for share in shares]
    assert set(seen[0]) | set(seen[1]) == set(range(n_forget))  # together: the whole forget set
    assert len(seen[0]) == len(seen[1]) == share
    assert len(set(seen[0]) & set(seen[1])) <= 1  # only the wrap-around pad
    single = list(ForgetRetainBatchSampler(forget, retain, batch, 6, seed=1))
    assert sorted(p for step in single for p in step if p < n_forget) == list(range(n_forget))


def test_evaluation_and_the_process_group_follow_the_accelerator(monkeypatch) -> None:
    """Where a job evaluates and which backend its ranks use: CUDA (NCCL) when the trainer may take a
    GPU and one is there, else the CPU (gloo). Lightning returns models to the CPU after a fit, so
    evaluation moves them itself."""
    from unlearnbench.distributed import _backend
    from unlearnbench.runtime.fit import eval_device

    cfg = OmegaConf.create({"trainer": {"accelerator": "auto"}})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert eval_device(cfg.trainer) == torch.device("cpu") and _backend(cfg) == "gloo"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert eval_device(cfg.trainer) == torch.device("cuda", 0) and _backend(cfg) == "nccl"
    cfg.trainer.accelerator = "cpu"
    assert eval_device(cfg.trainer) == torch.device("cpu") and _backend(cfg) == "gloo"
