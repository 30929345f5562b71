"""The run context: what a method and the evaluation need from the run. The config, the data, the
model store, a way to fit, and the models every comparison rests on: theta_0 (the original,
fine-tuned on D) and the retrained reference (fine-tuned on D_r), each trained once per spec.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn
from torch.utils.data import DataLoader

from unlearnbench.data import UnlearnDataModule
from unlearnbench.distributed import process_info
from unlearnbench.models import (
    EMBEDDED_MODEL_PACKAGE,
    build_pretrained,
    checkpoint_files,
    gradient_checkpointing,
    load_saved,
    pooling_option,
    resolve_pooling,
)
from unlearnbench.runtime import legacy
from unlearnbench.runtime.adapters import adapter_settings
from unlearnbench.runtime.finetune import SupervisedFit
from unlearnbench.runtime.fit import FitStats, TrainingModule, eval_device, fit
from unlearnbench.runtime.memory import PeakMemory
from unlearnbench.runtime.params import Recipe, parse_params
from unlearnbench.runtime.specs import BaseModelSpec, DataSpec, ModelSpec, ids_digest
from unlearnbench.runtime.store import ModelStore, StoreEntry


@dataclass
class UnlearnOutcome:
    """What a method's run gives the evaluation: the unlearned model, what the step cost, facts
    for results.json and, when the model is a store entry (the original, the retrained
    reference), that entry's key."""

    model: nn.Module
    stats: FitStats
    info: dict[str, Any] = field(default_factory=dict)
    store_key: str | None = None


def train_recipe(cfg: DictConfig) -> Recipe:
    """The ``train.*`` recipe that fine-tunes the original (and, by default, the retrained) model."""
    return parse_params(Recipe, cfg.train, "train")


def checkpoint_digest(path: str | Path) -> str:
    """What names a checkpoint's weights: a hash of its config and weight files."""
    digest = hashlib.sha256()
    for file in [Path(str(path)) / "config.json", *checkpoint_files(path)]:
        digest.update(file.name.encode() + b"\0")
        with open(file, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:32]


@dataclass
class RunContext:
    cfg: DictConfig
    data: UnlearnDataModule
    store: ModelStore
    run_dir: Path
    _original: StoreEntry | None = field(default=None, repr=False)
    _reference: StoreEntry | None = field(default=None, repr=False)

    @property
    def seed(self) -> int:
        """The run's seed: it picks the split and the forget set."""
        return int(self.cfg.seed)

    @property
    def train_seed(self) -> int:
        """The seed of every fine-tuning (head init, batch order, dropout): ``train_seed``, else
        ``seed``. Models that differ only in it form a pool (``eval.pool``)."""
        value = self.cfg.get("train_seed")
        return self.seed if value is None else int(value)

    @property
    def unlearn_seed(self) -> int:
        """The seed of the unlearning step (batch order, dropout, draws): ``unlearn_seed``, else ``seed``."""
        value = self.cfg.get("unlearn_seed")
        return self.seed if value is None else int(value)

    @property
    def legacy_keys(self) -> bool:
        """Models stored before specs existed were all trained with the run's seed, on records no
        forget design had changed."""
        return self.train_seed == self.seed and not self.data.manipulated

    def with_seeds(self, train_seed: int | None = None, unlearn_seed: int | None = None) -> RunContext:
        """This run with other training / unlearning seeds (a pool member): same data and store,
        none of this context's models in memory."""
        cfg = self.cfg.copy()
        with open_dict(cfg):
            if train_seed is not None:
                cfg.train_seed = int(train_seed)
            if unlearn_seed is not None:
                cfg.unlearn_seed = int(unlearn_seed)
        return RunContext(cfg, self.data, self.store, self.run_dir)

    def clean(self) -> RunContext:
        """This run on the clean records (before a forget design changed any): its ``original()``
        is the clean model, the second reference of a label swap or a backdoor."""
        if not self.data.manipulated:
            return self
        return RunContext(self.cfg, self.data.clean_view(), self.store, self.run_dir)

    @property
    def recipe(self) -> Recipe:
        return train_recipe(self.cfg)

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        module: TrainingModule,
        loader: DataLoader,
        callbacks: tuple[Callback, ...] | list[Callback] = (),
        log_dir: Path | None = None,
        seed: int | None = None,
        label: str = "unlearning",
    ) -> FitStats:
        """Fit ``module`` with this run's trainer, logger and checkpoint settings (see
        :func:`~unlearnbench.runtime.fit.fit`), in ``log_dir`` (default: the run dir), seeded by
        ``seed`` (default: the training seed). ``label`` says which fit this is (original,
        retrained reference, pool member, unlearning, ...): a loss that diverges is reported with
        it, the method and the step."""
        logger = self.cfg.get("logger")
        return fit(
            module,
            loader,
            trainer_cfg=OmegaConf.to_container(self.cfg.trainer, resolve=True),
            logger_cfg=OmegaConf.to_container(logger, resolve=True) if logger else None,
            log_dir=log_dir or self.run_dir,
            seed=self.train_seed if seed is None else seed,
            checkpoint_every=int(self.cfg.get("checkpoint", {}).get("every_n_steps") or 0),
            callbacks=callbacks,
            adapter=adapter_settings(self.cfg.model),
            gradient_checkpointing=gradient_checkpointing(self.cfg.model),
            method=str(self.cfg.method.get("name")),
            label=label,
        )

    def pretrained(self) -> nn.Module:
        """A fresh copy of the pretrained model with a new head (the start of every fine-tuning)."""
        torch.manual_seed(self.train_seed)
        return build_pretrained(
            self.cfg.model,
            self.data.num_labels,
            len(self.data.tokenizer),
            task=self.data.task,
            label_names=self.data.label_names,
            tokenizer=self.data.tokenizer,
        )

    @property
    def pooling(self) -> str:
        """What a sequence's representation is in this run (``model.pooling``; ``auto`` resolved by
        the model's family: ``cls`` for an encoder, ``last`` for a decoder): what the latent
        metrics and embeddings.npz read, and DeepCUT contrasts unless told otherwise."""
        requested = pooling_option(self.cfg.model)
        if requested != "auto":
            return requested
        return resolve_pooling(requested, getattr(self.original().model, "config", None))

    def fine_tune(
        self,
        indices: np.ndarray,
        recipe: Recipe,
        log_dir: Path,
        start: nn.Module | None = None,
        loader_seed: int | None = None,
        label: str = "fine-tuning",
    ) -> tuple[nn.Module, dict[str, Any]]:
        """``start`` (default: the pretrained model) fine-tuned on the samples ``indices``, and the
        store metadata of that training (its fit, its peak memory). ``loader_seed`` (default: the
        training seed) orders the batches; ``label`` names the fit (see :meth:`fit`)."""
        with PeakMemory() as memory:
            module = SupervisedFit(self.pretrained() if start is None else start, recipe)
            seed = self.train_seed if loader_seed is None else loader_seed
            loader = self.data.index_loader(indices, recipe.batch_size, seed)
            stats = self.fit(module, loader, log_dir=log_dir, label=label)
        return module.model, {"fit": asdict(stats), "memory": memory.as_dict()}

    # ------------------------------------------------------------------ specs
    def base_spec(self) -> BaseModelSpec:
        m = self.cfg.model
        source = str(m.get("source"))
        if source == "embedded":
            location = f"{EMBEDDED_MODEL_PACKAGE}=={metadata.version(EMBEDDED_MODEL_PACKAGE)}"
        else:
            location = None if source == "random" else str(m.get("path"))
        architecture = OmegaConf.to_container(m.architecture) if m.get("architecture") is not None else None
        return BaseModelSpec(
            source=source,
            location=location,
            tokenizer=f"{m.get('tokenizer') or location}|{len(self.data.tokenizer)}",
            architecture=architecture,
            init_seed=int(m.init_seed) if m.get("init_seed") is not None else None,
        )

    def data_spec(self) -> DataSpec:
        return DataSpec(
            fingerprint=self.data.fingerprint(),
            task=self.data.task.name,
            max_length=self.data.max_length,
            label_all_subwords=self.data.label_all_subwords,
        )

    def model_spec(
        self, kind: str, samples: Any, recipe: Recipe | None, detail: dict[str, Any] | None = None
    ) -> ModelSpec:
        """The spec of a model of this run's data, base model, seed and precision, trained with
        ``recipe`` on ``samples`` (their sorted ids, or any structure of ids that names them); LoRA
        training (``model.adapter``) is part of it."""
        lora = adapter_settings(self.cfg.model)
        return ModelSpec(
            kind=kind,
            data=self.data_spec(),
            base=self.base_spec(),
            recipe=recipe.spec() if recipe is not None else None,
            samples=ids_digest(samples),
            seed=self.train_seed,
            precision=str(self.cfg.trainer.get("precision")),
            processes=process_info().world_size,
            detail={**(detail or {}), **({"adapter": lora.spec()} if lora else {})},
        )

    # ------------------------------------------------------------------ the original and the reference
    def original(self) -> StoreEntry:
        """theta_0: the pretrained model fine-tuned on all of D, trained once per spec and stored;
        or, with ``model.checkpoint``, that model (copied into the store, keyed by its weights)."""
        if self._original is None:
            checkpoint = self.cfg.model.get("checkpoint")
            recipe = self.recipe
            world = process_info().world_size
            if checkpoint is not None:
                digest = checkpoint_digest(checkpoint)
                spec = self.model_spec("original", f"checkpoint:{digest}", None)
                old = legacy.original_key(self.cfg, world, recipe, digest) if self.legacy_keys else None

                def train(work_dir: Path):
                    return load_saved(checkpoint), {"checkpoint": str(checkpoint)}

            else:
                spec = self.model_spec("original", sorted(self.data.sample_ids("train")), recipe)
                train_indices = self.data.train_indices
                old = legacy.original_key(self.cfg, world, recipe, None) if self.legacy_keys else None

                def train(work_dir: Path):
                    return self.fine_tune(train_indices, recipe, work_dir, label="original")

            self._original = self.store.get_or_train(spec, train, legacy_key=old)
        return self._original

    def frozen_original(self) -> nn.Module:
        """A separate, frozen copy of theta_0 (a teacher or reference model for the method)."""
        model = load_saved(self.original().path)
        model.eval().requires_grad_(False)
        return model

    def retrained_spec(self, recipe: Recipe) -> ModelSpec:
        return self.model_spec("retrain", sorted(self.data.sample_ids("retain")), recipe)

    def retrained(self, recipe: Recipe) -> StoreEntry:
        """The pretrained model fine-tuned on D_r only with ``recipe``: the exact unlearning of this
        forget set, stored per spec."""
        old = None
        if self.legacy_keys:
            old = legacy.retrain_key(
                self.cfg, process_info().world_size, recipe, self.data.sample_ids("forget")
            )
        return self.store.get_or_train(
            self.retrained_spec(recipe),
            lambda d: self.fine_tune(self.data.splits.retain, recipe, d, label="retrained reference"),
            legacy_key=old,
        )

    def reference_spec(self) -> ModelSpec:
        """The spec of the retrained reference (the ``train.*`` recipe, as ``method=retrain``
        trains it), which may not be trained yet."""
        return self.retrained_spec(self.recipe)

    def reference_retrained(self) -> StoreEntry:
        """The retrained reference model of this forget set (trained now if it is not stored).

        Kept once got: under DDP all ranks get it together, then rank 0 alone evaluates with it."""
        if self._reference is None:
            self._reference = self.retrained(self.recipe)
        return self._reference

    def on_eval_device(self, model: nn.Module) -> nn.Module:
        """``model`` moved to where evaluation runs (:func:`~unlearnbench.runtime.fit.eval_device`)."""
        return model.to(eval_device(self.cfg.trainer))
