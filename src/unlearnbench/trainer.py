"""Lightning Trainers built from the ``trainer`` and ``logger`` configs, and a timed fit."""

from __future__ import annotations

import logging
import os
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

from unlearnbench.distributed import all_reduce_sum, cluster_environment, process_info, uses_cuda
from unlearnbench.errors import ConfigError
from unlearnbench.tracking import WANDB_TARGET, logger_kwargs

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


LAST_CHECKPOINT = "last.ckpt"


@dataclass
class FitStats:
    seconds: float = 0.0
    steps: int = 0
    samples: int = 0
    stopped_early: bool = False
    resumed_from_step: int | None = None  # a killed fit resumed from its checkpoint at this step


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
