"""Fitting: the LightningModule base every trained model shares (optimiser, schedule, resumable
RNG), Lightning Trainers built from the ``trainer`` and ``logger`` configs, and a timed fit that
keeps checkpoints and resumes a killed fit where it stopped."""

from __future__ import annotations

import logging
import os
import shutil
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch.utils.data import DataLoader
from transformers import PreTrainedModel, get_linear_schedule_with_warmup

from unlearnbench.data.loaders import ResumableLoader
from unlearnbench.distributed import (
    all_reduce_sum,
    barrier,
    cluster_environment,
    is_main_process,
    process_info,
    uses_cuda,
)
from unlearnbench.errors import ConfigError, DivergenceError
from unlearnbench.runtime.adapters import LoraSettings, adapted, trainable_parameters
from unlearnbench.runtime.params import TrainParams
from unlearnbench.runtime.tracking import WANDB_TARGET, logger_kwargs

# Lightning's start-up chatter (hardware lines, tips) and warnings that do not apply to short
# unlearning runs would bury the one summary line per job.
logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
logging.getLogger("lightning.fabric.utilities.rank_zero").setLevel(logging.WARNING)
for _pattern in (
    r".*LeafSpec.*",
    r".*smaller than the logging interval.*",
    r".*does not have many workers.*",
    r".*in eval mode at the start of training.*",
    r".*There is a wandb run already in progress.*",  # each fit's WandbLogger joins the job's run
    r".*The `srun` command is available on your system but is not used.*",  # local runs on a Slurm host
):
    warnings.filterwarnings("ignore", message=_pattern)


# Keys of the ``trainer`` config that are this package's, not ``lightning.Trainer`` arguments.
OWN_KEYS = ("compile",)


def compile_option(trainer_cfg: Mapping[str, Any]) -> bool:
    """``trainer.compile``: torch.compile the model before fitting (true / false)."""
    value = trainer_cfg.get("compile", False)
    if not isinstance(value, bool):
        raise ConfigError("trainer.compile", value, "true or false")
    return value


@contextmanager
def compiled_for_fit(module: L.LightningModule, trainer_cfg: Mapping[str, Any]) -> Iterator[None]:
    """With ``trainer.compile: true``, the module's model runs compiled inside this block (a fit) and
    eagerly after it.

    ``nn.Module.compile`` compiles in place, so the parameters and the state dict keep their names and
    saving and caching are unchanged. The evaluation after a fit runs eagerly: under inference mode
    torch would compile again (its guards see the grad mode change), about 10 s for tiny BERT on this
    project's CPU, for one pass over the splits, which does not pay.
    """
    model = module.model
    if not compile_option(trainer_cfg):
        yield
        return
    model.compile()
    try:
        yield
    finally:
        # The attribute nn.Module.compile sets and __call__ reads; None is what an eager module has.
        model._compiled_call_impl = None


@contextmanager
def checkpointed(module: L.LightningModule, enabled: bool) -> Iterator[None]:
    """Within the block (a fit), the module's model keeps no activations for the backward pass but
    recomputes them, layer by layer; after it, the model runs as before (evaluation, saving).

    The non-reentrant form of torch's checkpoint: it needs no input that requires grad (so a LoRA
    model with frozen embeddings still gets its gradients), and it replays the RNG state, so the
    dropout masks of the recomputation are those of the forward pass (DeepCUT's views stay
    distinct and the loss is the one without checkpointing). Frozen copies (SCRUB's teacher, NPO's
    reference) run under no_grad in eval mode, where nothing is checkpointed."""
    model = module.model
    if not enabled:
        yield
        return
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise ConfigError(
            "model.gradient_checkpointing", True, f"false: {type(model).__name__} does not support it"
        )
    # transformers 5 renamed the switch (the old name warns); older releases know only the old one.
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable({"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    try:
        yield
    finally:
        model = module.model
        if hasattr(model, "activation_checkpointing_disable"):
            model.activation_checkpointing_disable()
        else:
            model.gradient_checkpointing_disable()


LAST_CHECKPOINT = "last.ckpt"
CHECKPOINT_DIR = "checkpoints"  # in a fit's log dir: the run dir, or a store entry's work dir
log = logging.getLogger(__name__)


class TrainingModule(L.LightningModule):
    """A model being trained: AdamW over its parameters (no decay on biases and LayerNorm), an
    optional linear warm-up schedule, the samples it saw, and torch's RNG state in its checkpoints
    so that a resumed fit continues bit for bit."""

    def __init__(self, model: PreTrainedModel, params: TrainParams) -> None:
        super().__init__()
        model.train()  # from_pretrained returns eval mode; dropout must be on while training
        self.model, self.params = model, params
        self.samples_seen = 0

    def count(self, batch: dict[str, torch.Tensor]) -> None:
        self.samples_seen += int(batch["input_ids"].shape[0])

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Dropout draws from torch's RNG: with its state, a resumed fit continues bit for bit.
        checkpoint["torch_rng_state"] = torch.get_rng_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Starting an epoch's DataLoader iterator draws from the RNG too. Saved mid-epoch, the state
        # already includes that draw: set it at the first batch, after the resumed epoch's iterator
        # has started. Saved at an epoch's last batch: set it now, before the next epoch starts.
        state = checkpoint.get("torch_rng_state")
        progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_loop.batch_progress", {})
        if state is not None and progress.get("is_last_batch"):
            torch.set_rng_state(state)
            state = None
        self._rng_to_restore = state

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if getattr(self, "_rng_to_restore", None) is not None:
            torch.set_rng_state(self._rng_to_restore)
            self._rng_to_restore = None

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            if p.requires_grad:
                (no_decay if p.ndim < 2 or "LayerNorm" in name else decay).append(p)
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.params.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.params.lr,
        )
        if self.params.warmup_ratio == 0.0:  # constant learning rate
            return optimizer
        total = max(1, int(self.trainer.estimated_stepping_batches))
        schedule = get_linear_schedule_with_warmup(optimizer, int(self.params.warmup_ratio * total), total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


@dataclass
class FitStats:
    seconds: float = 0.0
    steps: int = 0
    samples: int = 0
    stopped_early: bool = False
    resumed_from_step: int | None = None  # a killed fit resumed from its checkpoint at this step
    trainable_parameters: int | None = None  # parameters the optimiser updated (LoRA: adapters and head)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temp name and renamed into place: a kill never leaves a torn one.
    They are loaded with ``weights_only=True`` (see :func:`timed_fit`)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        tmp = Path(f"{path}.tmp")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)


def checkpoint_callback(directory: Path, every_n_steps: int) -> ModelCheckpoint:
    """Keeps ``<directory>/last.ckpt``: the state of the fit every ``every_n_steps`` steps."""
    return ModelCheckpoint(
        dirpath=directory,
        filename=LAST_CHECKPOINT.removesuffix(".ckpt"),
        every_n_train_steps=every_n_steps,
        save_top_k=1,  # no monitor: the latest one
        enable_version_counter=False,
    )


class FiniteLoss(Callback):
    """Stops a fit at the first step whose loss is NaN or infinite, before its backward pass, with a
    :class:`DivergenceError` naming the method, the fit and the step. Under DDP the ranks agree
    first (one rank's bad loss stops them all), so none is left waiting in a collective."""

    def __init__(self, method: str | None, fit: str) -> None:
        self.method, self.fit = method, fit

    def on_before_backward(self, trainer: L.Trainer, module: L.LightningModule, loss: torch.Tensor) -> None:
        value = loss.detach().float()
        bad = int(not bool(torch.isfinite(value).all()))
        if process_info().world_size > 1:
            bad = all_reduce_sum(bad)
        if bad:
            shown = value.item() if value.numel() == 1 else "not finite"
            who = f"method {self.method}: " if self.method else ""
            raise DivergenceError(
                f"{who}the {self.fit} fit diverged at step {trainer.global_step + 1} (epoch "
                f"{trainer.current_epoch}): the loss is {shown}"
            )


def eval_device(trainer_cfg: Mapping[str, Any]) -> torch.device:
    """Where evaluation's forward passes run: the fit's accelerator. Lightning moves a model back to
    the CPU when a fit ends, and the cached models load there, so evaluation must move them itself."""
    return torch.device("cuda", process_info().local_rank) if uses_cuda(trainer_cfg) else torch.device("cpu")


def build_trainer(
    trainer_cfg: Mapping[str, Any],
    logger_cfg: Mapping[str, Any] | None,
    log_dir: Path,
    *,
    max_epochs: int,
    max_steps: int,
    callbacks: Sequence[Callback] = (),
) -> L.Trainer:
    """A Trainer for one fit. A :func:`checkpoint_callback` among ``callbacks`` turns checkpoints on."""
    logger = False
    checkpointing = any(isinstance(c, ModelCheckpoint) for c in callbacks)
    plugins: list[Any] = [AtomicCheckpointIO()] if checkpointing else []
    # Under DDP, Lightning must use the environment that started the ranks (Slurm or torchrun-style),
    # not guess: a spawned job inside a one-task Slurm allocation would look like Slurm otherwise.
    env = cluster_environment() if process_info().world_size > 1 else None
    if logger_cfg:
        if logger_cfg.get("_target_") == WANDB_TARGET:
            logger_cfg = logger_kwargs(logger_cfg)
        logger = instantiate(dict(logger_cfg), save_dir=str(log_dir), _convert_="all")
    compile_option(trainer_cfg)  # checked here too: a bad value fails before training
    return L.Trainer(
        **{k: v for k, v in trainer_cfg.items() if k not in OWN_KEYS},
        max_epochs=max_epochs,
        max_steps=max_steps,
        logger=logger,
        callbacks=list(callbacks),
        plugins=[*plugins, env] if env is not None else plugins or None,
        default_root_dir=str(log_dir),
        enable_checkpointing=checkpointing,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        # Samplers are rank-aware themselves (paired forget/retain batches cannot be re-wrapped).
        use_distributed_sampler=False,
    )


def timed_fit(
    module: L.LightningModule, loader: DataLoader, trainer: L.Trainer, resume_from: Path | None = None
) -> FitStats:
    """Fit, from the checkpoint ``resume_from`` when given (a killed fit's last state)."""
    start = time.perf_counter()
    trainer.fit(module, train_dataloaders=loader, ckpt_path=resume_from, weights_only=True)
    seconds = time.perf_counter() - start
    return FitStats(
        seconds=seconds,
        steps=int(trainer.global_step),
        samples=all_reduce_sum(int(getattr(module, "samples_seen", 0))),  # over all DDP ranks
        stopped_early=bool(trainer.should_stop and trainer.global_step < trainer.estimated_stepping_batches),
    )


def fit(
    module: TrainingModule,
    loader: DataLoader,
    *,
    trainer_cfg: Mapping[str, Any],
    logger_cfg: Mapping[str, Any] | None,
    log_dir: Path,
    seed: int,
    checkpoint_every: int = 0,
    callbacks: Sequence[Callback] = (),
    adapter: LoraSettings | None = None,
    gradient_checkpointing: bool = False,
    method: str | None = None,
    label: str = "unlearning",
) -> FitStats:
    """Fit ``module`` for its params' budget. With ``checkpoint_every`` > 0 its state is kept in
    ``<log_dir>/checkpoints`` while it trains; a fit killed before its end resumes from there when
    the job runs again, and the checkpoints go once it has finished. ``adapter``: train LoRA adapters
    (and the head) only, merged into the model when the fit ends. ``gradient_checkpointing``: the
    model recomputes its activations in the backward pass while it fits (:func:`checkpointed`).

    A loss that becomes NaN or infinite stops the fit at once (:class:`FiniteLoss`): a
    :class:`DivergenceError` names ``method``, the fit (``label``: original, retrained reference,
    unlearning, ...) and the step. Its checkpoints go too: resuming from them would diverge again."""
    L.seed_everything(seed, workers=True, verbose=False)
    with checkpointed(module, gradient_checkpointing), adapted(module, adapter):
        stats = _fit(
            module, loader, trainer_cfg, logger_cfg, log_dir, checkpoint_every, callbacks, method, label
        )
    return stats


def _fit(
    module: TrainingModule,
    loader: DataLoader,
    trainer_cfg: Mapping[str, Any],
    logger_cfg: Mapping[str, Any] | None,
    log_dir: Path,
    checkpoint_every: int,
    callbacks: Sequence[Callback],
    method: str | None,
    label: str,
) -> FitStats:
    ckpt_dir = log_dir / CHECKPOINT_DIR
    last = ckpt_dir / LAST_CHECKPOINT
    resume_from = last if checkpoint_every and last.exists() else None
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
    params = module.params
    trainer = build_trainer(
        trainer_cfg,
        logger_cfg,
        log_dir,
        max_epochs=params.epochs,
        max_steps=params.max_steps,
        callbacks=[
            *callbacks,
            FiniteLoss(method, label),
            *([checkpoint_callback(ckpt_dir, checkpoint_every)] if checkpoint_every else []),
        ],
    )
    try:
        with compiled_for_fit(module, trainer_cfg):
            stats = timed_fit(module, loader, trainer, resume_from)
    except DivergenceError:
        if is_main_process():
            shutil.rmtree(ckpt_dir, ignore_errors=True)
        raise
    stats.resumed_from_step = resumed_step
    stats.trainable_parameters = trainable_parameters(module)
    barrier()
    if is_main_process():
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    return stats
