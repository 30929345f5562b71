"""One experiment, end to end:

config -> data (splits, forget set) -> original model (stored) -> method.run (timed, peak memory)
       -> evaluate (registered sections; against the original and the retrained reference)
       -> results.json, predictions.parquet, embeddings.npz in the run dir
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from unlearnbench.audit import model_card
from unlearnbench.data import UnlearnDataModule
from unlearnbench.distributed import is_main_process, launch, needs_launch, process_group, process_info
from unlearnbench.errors import ConfigError
from unlearnbench.evaluation import EvalOptions, evaluate_run
from unlearnbench.io import atomic_dir, atomic_path, atomic_write_json, json_ready, package_versions
from unlearnbench.methods import METHODS, Method, get_method
from unlearnbench.models import (
    check_checkpoint,
    check_max_length,
    check_model_config,
    export_model,
    load_tokenizer,
)
from unlearnbench.pools import PoolBuilder, PoolOptions
from unlearnbench.requests import run_requests
from unlearnbench.results import (
    EMBEDDINGS_FILE,
    FORGET_IDS_FILE,
    MEMORIZATION_FILE,
    MODEL_DIR,
    PREDICTIONS_FILE,
    QUALITY_FILE,
    RESULTS_FILE,
    SCHEMA_VERSION,
)
from unlearnbench.runtime import ModelStore, RunContext, train_recipe
from unlearnbench.runtime.fit import compile_option
from unlearnbench.runtime.memorization import memorization_scores
from unlearnbench.runtime.memory import PeakMemory
from unlearnbench.runtime.tracking import log_results, tracked_run

log = logging.getLogger(__name__)


def method_class(method_cfg: DictConfig) -> type[Method]:
    """The class ``method._target_`` names (any importable subclass of :class:`Method`, a method of
    the user's own included), else the built-in method registered as ``method.name``."""
    target = method_cfg.get("_target_")
    if target is None:
        return get_method(method_cfg.get("name"))
    try:
        cls = get_class(str(target))
    except (ImportError, InstantiationException, ValueError) as exc:
        raise ConfigError("method._target_", target, f"an importable class ({exc})") from None
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise ConfigError("method._target_", target, "a subclass of unlearnbench.methods.Method")
    name = method_cfg.get("name")
    registered = getattr(cls, "name", None)
    if METHODS.get(registered) is cls and name != registered:  # a built-in method under another name
        raise ConfigError(
            "method.name",
            name,
            f"'{registered}' for {target} (built-in methods: one of {', '.join(sorted(METHODS))})",
        )
    return cls


FORGET_IDENTITY = (
    "strategy",
    "ratio",
    "class_name",
    "path",
    "level",
    "classes",
    "target",
    "identified",
    "tag",
)


def pool_options(cfg: DictConfig) -> PoolOptions:
    """``eval.pool``: N members per pool (0: off), whether this run gathers them, the retain sample."""
    try:
        opts = PoolOptions.from_cfg(cfg.eval.get("pool"))
    except TypeError as exc:
        raise ConfigError(
            "eval.pool",
            OmegaConf.to_container(cfg.eval.get("pool")),
            f"keys size, gather, retain_max_samples ({exc})",
        ) from None
    if not isinstance(opts.size, int) or isinstance(opts.size, bool) or opts.size < 0 or opts.size == 1:
        raise ConfigError("eval.pool.size", opts.size, "0 (no pools) or a number of models >= 2")
    if not isinstance(opts.gather, bool):
        raise ConfigError("eval.pool.gather", opts.gather, "true or false")
    return opts


def run_identity(cfg: DictConfig) -> dict[str, Any]:
    forget = OmegaConf.to_container(cfg.forget, resolve=True)
    return {
        "dataset": cfg.data.name,
        "model": cfg.model.name,
        "adapter": cfg.model.get("adapter") or "none",
        "method": cfg.method.name,
        "forget": {k: forget.get(k) for k in FORGET_IDENTITY if k in forget},
        "seed": int(cfg.seed),
        "train_seed": int(cfg.seed if cfg.get("train_seed") is None else cfg.train_seed),
        "unlearn_seed": int(cfg.seed if cfg.get("unlearn_seed") is None else cfg.unlearn_seed),
        "experiment": cfg.get("experiment_name"),
    }


SEED_MAX = 2**32 - 1  # what every seeded library takes (numpy, scikit-learn, Lightning)


def config_leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every (dotted key, value) of a resolved config tree, list items as ``key[i]``."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from config_leaves(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from config_leaves(value, f"{prefix}[{i}]")
    else:
        yield prefix, node


def resolved_leaves(cfg: DictConfig) -> list[tuple[str, Any]]:
    try:
        return list(config_leaves(OmegaConf.to_container(cfg, resolve=True)))
    except OmegaConfBaseException:  # a value that does not resolve: the check of its key says so
        return []


def check_seeds(cfg: DictConfig) -> None:
    """Every seed of the config (``seed``, ``*_seed``) is an integer in [0, 2**32 - 1], or null."""
    for key, value in resolved_leaves(cfg):
        name = key.rsplit(".", 1)[-1]
        if value is None or not (name == "seed" or name.endswith("_seed")):
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= SEED_MAX:
            nullable = ", or null for the value of seed" if key in ("train_seed", "unlearn_seed") else ""
            raise ConfigError(key, value, f"an integer in [0, {SEED_MAX}]{nullable}")


def check_finite(cfg: DictConfig) -> None:
    """No number anywhere in the config is NaN or infinite."""
    for key, value in resolved_leaves(cfg):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(key, value, "a finite number")


def prepare(cfg: DictConfig) -> tuple[type[Method], Any, UnlearnDataModule]:
    """Everything that can fail on bad input, done before any training."""
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int):
        raise ConfigError("seed", cfg.seed, "an integer")
    for key in ("train_seed", "unlearn_seed"):
        value = cfg.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(key, value, "an integer, or null for the value of seed")
    check_seeds(cfg)
    method_cls = method_class(cfg.method)
    params = method_cls.parse_params(cfg.method)
    train_recipe(cfg)
    compile_option(cfg.trainer)
    EvalOptions.from_cfg(OmegaConf.to_container(cfg.eval, resolve=True))
    pool_options(cfg)
    check_finite(cfg)  # after the checks above, whose messages say more about their own keys
    check_model_config(cfg.model)
    tokenizer = load_tokenizer(cfg.model)
    check_max_length(cfg.model, cfg.data.get("max_length", 128), tokenizer)
    data = UnlearnDataModule(
        cfg.data,
        cfg.forget,
        tokenizer,
        int(cfg.seed),
        cfg.paths.cache_dir,
        eval_batch_size=int(cfg.eval.batch_size),
    )
    data.setup()
    if data.needs_forget_scores:  # forget=memorized: scores from cheap models first, then D_f
        ctx = RunContext(cfg, data, ModelStore(cfg.paths.cache_dir), Path(cfg.paths.cache_dir))
        data.memorization = memorization_scores(ctx, cfg.forget)
        data.resolve_forget(data.memorization[0])
    if cfg.model.get("checkpoint") is not None:
        check_checkpoint(cfg.model.checkpoint, data.num_labels, len(tokenizer))
    method_cls.check_data(params, data)
    return method_cls, params, data


def run_experiment(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    """Run one (data, model, method, forget set, seed) point and write results.json in ``run_dir``.

    With ``trainer=ddp`` on one machine this spawns the DDP ranks and returns rank 0's results; in
    a rank (spawned, torchrun or Slurm), it runs the rank's part: ranks > 0 return ``{}``."""
    run_dir = Path(run_dir)
    if needs_launch(cfg):
        prepare(cfg)  # bad input fails here, once, before any process starts
        launch(_run_rank, cfg, str(run_dir))
        return json.loads((run_dir / RESULTS_FILE).read_text())
    with process_group(cfg):
        return _run(cfg, run_dir)


def _run_rank(cfg: dict[str, Any], run_dir: str) -> None:
    run_experiment(OmegaConf.create(cfg), run_dir)


def _run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    t_start = time.perf_counter()
    main = is_main_process()
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    method_cls, params, data = prepare(cfg)
    if main:
        clear_outputs(run_dir)
        atomic_write_json(run_dir / FORGET_IDS_FILE, data.sample_ids("forget"))
        if data.memorization is not None:
            write_memorization(run_dir / MEMORIZATION_FILE, data)
    with tracked_run(cfg, run_dir) if main else nullcontext() as tracker:
        results = _unlearn_and_evaluate(cfg, run_dir, method_cls, params, data, t_start)
        log_results(tracker, results)
    return results


def _unlearn_and_evaluate(
    cfg: DictConfig,
    run_dir: Path,
    method_cls: type[Method],
    params: Any,
    data: UnlearnDataModule,
    t_start: float,
) -> dict[str, Any]:
    main = is_main_process()
    ctx = RunContext(cfg, data, ModelStore(cfg.paths.cache_dir), run_dir)
    original = ctx.original()
    name = cfg.method.name
    log.info(
        "[%s] unlearning: %d forget / %d retain samples",
        name,
        len(data.splits.forget),
        len(data.splits.retain),
    )
    sequence = None
    with PeakMemory() as memory:
        if len(data.requests) > 1:  # deletion requests one after another
            outcome, sequence = run_requests(ctx, method_cls, params)
        else:
            outcome = method_cls.run(ctx, params)
    pools, pool_opts = None, pool_options(cfg)
    if pool_opts.size > 0:  # the other members of the method's pool and the retrained pool
        builder = PoolBuilder(ctx, method_cls, params, pool_opts)
        if pool_opts.gather:
            pools = builder.gather(outcome)
        else:
            builder.add_own(outcome)
    if process_info().world_size > 1:
        if cfg.eval.reference:
            ctx.reference_retrained()  # trained by all ranks together if missing; evaluated by rank 0
        if not main:
            return {}
    t_eval = time.perf_counter()
    evaluation = evaluate_run(ctx, outcome, run_dir, memory.as_dict(), pools, sequence)
    eval_seconds = time.perf_counter() - t_eval

    results = {
        "schema_version": SCHEMA_VERSION,
        "run": run_identity(cfg),
        "sizes": data.splits.sizes(),
        **evaluation,
        "timing": {
            "unlearn_seconds": outcome.stats.seconds,
            "eval_seconds": eval_seconds,
            "total_seconds": time.perf_counter() - t_start,
            "steps": outcome.stats.steps,
            "samples": outcome.stats.samples,
            "stopped_early": outcome.stats.stopped_early,
        },
        "original": {"cache_key": original.key, "from_cache": original.hit},
        "method_info": outcome.info,
        "method_params": OmegaConf.to_container(cfg.method, resolve=True),
        "versions": package_versions(),
    }
    results = json_ready(results)
    if cfg.get("save_model"):  # a complete model directory: plain transformers loads and serves it
        with atomic_dir(run_dir / MODEL_DIR) as tmp:
            export_model(outcome.model, data.tokenizer, tmp, data.label_names, model_card(results))
    atomic_write_json(run_dir / RESULTS_FILE, results)  # last: a run dir with it is complete
    m = results["metrics"]
    log.info(
        "[%s] forget F1 %s | retain F1 %s | test F1 %s | unlearn %.1fs | %s",
        name,
        *(_score(m, split) for split in ("forget", "retain", "test")),
        outcome.stats.seconds,
        run_dir,
    )
    return results


def _score(metrics: dict[str, Any], split: str) -> str:
    value = (metrics.get(split) or {}).get("f1")
    return "-" if value is None else f"{value:.3f}"


def write_memorization(path: Path, data: UnlearnDataModule) -> None:
    """memorization.parquet: every training sample's memorization score and whether it is in D_f."""
    import pandas as pd

    scores = data.memorization[0]
    frame = pd.DataFrame(
        {
            "sample_id": data.sample_ids("train"),
            "index": data.train_indices,
            "score": scores,
            "forget": np.isin(data.train_indices, data.splits.forget),
        }
    )
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def clear_outputs(run_dir: Path) -> None:
    """Remove what an earlier attempt in this dir wrote: results.json first, so that until this run
    writes its own, no reader pairs an old results.json with this run's other files."""
    for name in (
        RESULTS_FILE,
        PREDICTIONS_FILE,
        EMBEDDINGS_FILE,
        FORGET_IDS_FILE,
        MEMORIZATION_FILE,
        QUALITY_FILE,
    ):
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / MODEL_DIR, ignore_errors=True)
