"""One experiment, end to end:

config -> data (splits, forget set) -> original model (cached) -> method.run (timed, peak memory)
       -> evaluate (one pass per split; against the original and the retrained reference)
       -> results.json, predictions.parquet, embeddings.npz in the run dir
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from unlearnbench.cache import CacheEntry, ModelCache
from unlearnbench.data import UnlearnDataModule
from unlearnbench.data.datamodule import ResumableLoader
from unlearnbench.distributed import (
    barrier,
    is_main_process,
    launch,
    needs_launch,
    process_group,
    process_info,
)
from unlearnbench.errors import ConfigError
from unlearnbench.evaluation.cost import PeakMemory, process_peak_rss_mb
from unlearnbench.evaluation.run import (
    EMBEDDINGS_FILE,
    PREDICTIONS_FILE,
    EvalOptions,
    evaluate_run,
    json_ready,
)
from unlearnbench.io import atomic_dir, atomic_write_json, package_versions, stable_hash
from unlearnbench.methods import MethodParams, UnlearningMethod, get_method
from unlearnbench.methods.finetune import FineTune
from unlearnbench.models import (
    build_pretrained,
    check_checkpoint,
    check_model_config,
    checkpoint_files,
    load_saved,
    load_tokenizer,
    save_model,
)
from unlearnbench.tracking import log_results, tracked_run
from unlearnbench.trainer import (
    LAST_CHECKPOINT,
    FitStats,
    build_trainer,
    checkpoint_callback,
    compile_option,
    compiled_for_fit,
    eval_device,
    timed_fit,
)

log = logging.getLogger(__name__)
SCHEMA_VERSION = 2
CHECKPOINT_DIR = "checkpoints"  # in a fit's log dir: the run dir, or a cache entry's work dir
RESULTS_FILE = "results.json"
# Keys of the data config that describe it and do not change a model trained on it (not in cache keys).
DESCRIPTIVE_DATA_KEYS = ("origin", "licence")
MODEL_DIR = "model"
# The sections every finished run has (the others may be null when switched off).
RESULTS_SECTIONS = ("run", "sizes", "metrics", "cost", "timing", "original", "versions")


@dataclass
class RunContext:
    """What a method needs from the run: config, data, the model cache and a way to fit."""

    cfg: DictConfig
    data: UnlearnDataModule
    cache: ModelCache
    run_dir: Path
    _original: CacheEntry | None = field(default=None, repr=False)
    _reference: CacheEntry | None = field(default=None, repr=False)

    @property
    def seed(self) -> int:
        return int(self.cfg.seed)

    def fit(
        self,
        module: L.LightningModule,
        loader,
        params: MethodParams,
        callbacks=(),
        log_dir: Path | None = None,
    ) -> FitStats:
        """Fit ``module``; with ``checkpoint.every_n_steps``, its state is kept in
        ``<log_dir>/checkpoints`` while it trains, a fit killed before its end resumes from there
        when the job runs again, and the checkpoints go once it has finished."""
        L.seed_everything(self.seed, workers=True, verbose=False)
        trainer_cfg = OmegaConf.to_container(self.cfg.trainer, resolve=True)
        log_dir = log_dir or self.run_dir
        every = int(self.cfg.get("checkpoint", {}).get("every_n_steps") or 0)
        ckpt_dir = log_dir / CHECKPOINT_DIR
        last = ckpt_dir / LAST_CHECKPOINT
        resume_from = last if every and last.exists() else None
        resumed_step = None
        if resume_from is not None:
            state = torch.load(last, map_location="cpu", weights_only=True)
            resumed_step = int(state["global_step"])
            # The batches of the interrupted epoch that were trained on: the loader skips them (its
            # order is seeded by the epoch), so the fit goes on exactly where it stopped.
            done = state["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["processed"]
            if isinstance(loader, ResumableLoader) and done < len(loader):  # else: the epoch had ended
                loader.load_state_dict({"batches_taken": int(done)})
            log.info("resuming a killed fit from step %d (%s)", resumed_step, resume_from)
        trainer = build_trainer(
            trainer_cfg,
            OmegaConf.to_container(self.cfg.logger, resolve=True) if self.cfg.get("logger") else None,
            log_dir,
            max_epochs=params.epochs,
            max_steps=params.max_steps,
            callbacks=[*callbacks, checkpoint_callback(ckpt_dir, every)] if every else callbacks,
        )
        with compiled_for_fit(module, trainer_cfg):
            stats = timed_fit(module, loader, trainer, resume_from)
        stats.resumed_from_step = resumed_step
        barrier()
        if is_main_process():
            shutil.rmtree(ckpt_dir, ignore_errors=True)
        return stats

    def pretrained(self):
        """A fresh copy of the pretrained model with a new head (the start of every fine-tuning)."""
        torch.manual_seed(self.seed)
        return build_pretrained(
            self.cfg.model,
            self.data.num_labels,
            len(self.data.tokenizer),
            task=self.data.task,
            label_names=list(self.data.data.label_names),
        )

    def _recipe(self) -> MethodParams:
        return train_recipe(self.cfg)

    def _model_spec(self) -> dict[str, Any]:
        """Everything a trained model depends on, for its cache key."""
        data = OmegaConf.to_container(self.cfg.data, resolve=True)
        spec = {
            "data": {k: v for k, v in data.items() if k not in DESCRIPTIVE_DATA_KEYS},
            "model": OmegaConf.to_container(self.cfg.model, resolve=True),
            "seed": self.seed,
            "precision": str(self.cfg.trainer.get("precision")),
        }
        world = process_info().world_size
        if world > 1:  # DDP: batch sizes are per process, so the model differs (keys of 1-process runs stay)
            spec["processes"] = world
        return spec

    def _train_from_pretrained(self, split: str, params: MethodParams, log_dir: Path):
        with PeakMemory() as memory:
            module = FineTune(self.pretrained(), params, self.data.num_labels, split=split)
            stats = self.fit(module, module.train_loader(self.data, self.seed), params, log_dir=log_dir)
        return module.model, {"fit": asdict(stats), "memory": memory.as_dict()}

    def original(self) -> CacheEntry:
        """theta_0: the pretrained model fine-tuned on all of D, trained once per spec and cached;
        or, with ``model.checkpoint``, that model (copied into the cache, keyed by its weights)."""
        if self._original is None:
            checkpoint = self.cfg.model.get("checkpoint")
            recipe = self._recipe()

            def train(work_dir: Path):
                if checkpoint is not None:
                    return load_saved(checkpoint), {"checkpoint": str(checkpoint)}
                return self._train_from_pretrained("train", recipe, work_dir)

            if checkpoint is not None:
                spec = {**self._model_spec(), "checkpoint": checkpoint_digest(checkpoint)}
            else:
                spec = {**self._model_spec(), "recipe": recipe.cache_spec()}
            self._original = self.cache.get_or_train("original", spec, train)
        return self._original

    def on_eval_device(self, model):
        """``model`` moved to where evaluation runs (:func:`~unlearnbench.trainer.eval_device`)."""
        return model.to(eval_device(self.cfg.trainer))

    def frozen_original(self):
        """A separate, frozen copy of theta_0 (a teacher or reference model for the method)."""
        model = load_saved(self.original().path)
        model.eval().requires_grad_(False)
        return model

    def _retrain_spec(self, params: MethodParams) -> dict[str, Any]:
        forget_ids = sorted(self.data.sample_ids("forget"))
        return {
            **self._model_spec(),
            "recipe": params.cache_spec(),
            "forget_ids": stable_hash(forget_ids, 32),
        }

    def retrained(self, params: MethodParams) -> CacheEntry:
        """The retrained reference for this forget set: fine-tuned on D_r only, cached per split."""
        return self.cache.get_or_train(
            "retrain", self._retrain_spec(params), lambda d: self._train_from_pretrained("retain", params, d)
        )

    def reference_params(self) -> MethodParams:
        """The parameters ``method=retrain`` gets (conf/method/retrain.yaml: the ``train.*`` recipe),
        so that the evaluation's reference is the cache entry a ``retrain`` run trains or reads."""
        return replace(train_recipe(self.cfg), name="retrain")

    def reference_entry_dir(self) -> tuple[str, Path]:
        """Cache key and entry dir of the retrained reference (which may not be trained yet)."""
        return self.cache.entry_dir("retrain", self._retrain_spec(self.reference_params()))

    def reference_retrained(self) -> CacheEntry:
        """The retrained reference model of this forget set (trained now if it is not in the cache).

        Kept once got: under DDP all ranks get it together, then rank 0 alone evaluates with it."""
        if self._reference is None:
            self._reference = self.retrained(self.reference_params())
        return self._reference


def train_recipe(cfg: DictConfig) -> MethodParams:
    """The ``train.*`` recipe that fine-tunes the original (and, by default, the retrained) model."""
    try:
        return FineTune.parse_params({"name": "train", **OmegaConf.to_container(cfg.train, resolve=True)})
    except ConfigError as exc:  # the schema is FineTune's, the keys are train.*
        raise ConfigError(exc.key.replace("method.", "train.", 1), exc.value, exc.allowed) from None


def checkpoint_digest(path: str | Path) -> str:
    """What names a checkpoint's weights in the cache key: a hash of its config and weight files."""
    digest = hashlib.sha256()
    for file in [Path(str(path)) / "config.json", *checkpoint_files(path)]:
        digest.update(file.name.encode() + b"\0")
        with open(file, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:32]


def run_identity(cfg: DictConfig) -> dict[str, Any]:
    forget = OmegaConf.to_container(cfg.forget, resolve=True)
    return {
        "dataset": cfg.data.name,
        "model": cfg.model.name,
        "method": cfg.method.name,
        "forget": {
            k: forget.get(k) for k in ("strategy", "ratio", "class_name", "path", "tag") if k in forget
        },
        "seed": int(cfg.seed),
        "experiment": cfg.get("experiment_name"),
    }


def prepare(cfg: DictConfig) -> tuple[type[UnlearningMethod], MethodParams, UnlearnDataModule]:
    """Everything that can fail on bad input, done before any training."""
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int):
        raise ConfigError("seed", cfg.seed, "an integer")
    method_cls = get_method(cfg.method.name)
    params = method_cls.parse_params(cfg.method)
    train_recipe(cfg)
    compile_option(cfg.trainer)
    EvalOptions.from_cfg(OmegaConf.to_container(cfg.eval, resolve=True))
    check_model_config(cfg.model)
    tokenizer = load_tokenizer(cfg.model)
    data = UnlearnDataModule(
        cfg.data,
        cfg.forget,
        tokenizer,
        int(cfg.seed),
        cfg.paths.cache_dir,
        eval_batch_size=int(cfg.eval.batch_size),
    )
    data.setup()
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
        atomic_write_json(run_dir / "forget_ids.json", data.sample_ids("forget"))
    with tracked_run(cfg, run_dir) if main else nullcontext() as tracker:
        results = _unlearn_and_evaluate(cfg, run_dir, method_cls, params, data, t_start)
        log_results(tracker, results)
    return results


def _unlearn_and_evaluate(
    cfg: DictConfig,
    run_dir: Path,
    method_cls: type[UnlearningMethod],
    params: MethodParams,
    data: UnlearnDataModule,
    t_start: float,
) -> dict[str, Any]:
    main = is_main_process()
    ctx = RunContext(cfg, data, ModelCache(cfg.paths.cache_dir), run_dir)
    original = ctx.original()
    log.info(
        "[%s] unlearning: %d forget / %d retain samples",
        params.name,
        len(data.splits.forget),
        len(data.splits.retain),
    )
    with PeakMemory() as memory:
        outcome = method_cls.run(ctx, params)
    if process_info().world_size > 1:
        if cfg.eval.reference:
            ctx.reference_retrained()  # trained by all ranks together if missing; evaluated by rank 0
        if not main:
            return {}
    t_eval = time.perf_counter()
    evaluation = evaluate_run(ctx, outcome, run_dir, memory.as_dict())
    eval_seconds = time.perf_counter() - t_eval
    metrics = evaluation["metrics"]
    if cfg.get("save_model"):
        with atomic_dir(run_dir / MODEL_DIR) as tmp:
            save_model(outcome.model, tmp)

    results = {
        "schema_version": SCHEMA_VERSION,
        "run": run_identity(cfg),
        "sizes": data.splits.sizes(),
        "metrics": metrics,
        "reference": evaluation["reference"],
        "mia": evaluation["mia"],
        "latent": evaluation["latent"],
        # The job's whole process, training of cached models included: /usr/bin/time under-reports it.
        "cost": {**evaluation["cost"], "process_peak_rss_mb": process_peak_rss_mb()},
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
    atomic_write_json(run_dir / RESULTS_FILE, results)
    m = metrics
    log.info(
        "[%s] forget F1 %.3f | retain F1 %.3f | test F1 %.3f | unlearn %.1fs | %s",
        params.name,
        m.get("forget", {}).get("f1", float("nan")),
        m.get("retain", {}).get("f1", float("nan")),
        m.get("test", {}).get("f1", float("nan")),
        outcome.stats.seconds,
        run_dir,
    )
    return results


def clear_outputs(run_dir: Path) -> None:
    """Remove what an earlier attempt in this dir wrote: results.json first, so that until this run
    writes its own, no reader pairs an old results.json with this run's other files."""
    for name in (RESULTS_FILE, PREDICTIONS_FILE, EMBEDDINGS_FILE, "forget_ids.json"):
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / MODEL_DIR, ignore_errors=True)


def read_results(run_dir: str | Path) -> dict[str, Any] | None:
    """A run dir's results.json if it is complete and of this schema, else None: a truncated, partial
    or older file is not trusted (it is written atomically and last, so a finished run has one)."""
    try:
        results = json.loads((Path(run_dir) / RESULTS_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(results, dict) or results.get("schema_version") != SCHEMA_VERSION:
        return None
    if any(not isinstance(results.get(key), dict) for key in RESULTS_SECTIONS):
        return None
    return results


def is_complete(run_dir: str | Path) -> bool:
    """A run dir whose results.json was written in full (see :func:`read_results`)."""
    return read_results(run_dir) is not None
