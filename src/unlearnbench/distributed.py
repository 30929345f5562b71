"""Data-parallel (DDP) runs: which process is which, the process group, and the local launcher.

A DDP run is N processes that each run the whole pipeline in step: every fit is one DDP fit across
them (each rank trains on its own share of every batch stream), and rank 0 alone takes the model
cache's lock, evaluates on the full splits and writes the run dir. The processes come from

- Slurm: ``srun`` with ``tasks_per_node=N`` (``hydra/launcher=submitit_slurm``),
- torchrun (or any launcher that sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT),
- :func:`launch`: ``trainer=ddp`` on one machine, where the job's own process spawns them.

The process group is set up here, before Lightning's first fit, so that the ranks can agree on
cache hits and misses before any training; Lightning then finds it initialised and uses it.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightning.fabric.plugins.environments import (
    ClusterEnvironment,
    SLURMEnvironment,
    TorchElasticEnvironment,
)
from omegaconf import DictConfig, OmegaConf

from unlearnbench.errors import ConfigError

log = logging.getLogger(__name__)
T = TypeVar("T")
DDP_STRATEGIES = ("ddp", "ddp_find_unused_parameters_true")


@dataclass(frozen=True)
class ProcessInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1


def cluster_environment() -> ClusterEnvironment | None:
    """The environment that started this process as one of several, or None for a single process.

    torchrun-style variables come first: :func:`launch` sets them, also inside a one-task Slurm job."""
    if TorchElasticEnvironment.detect() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return TorchElasticEnvironment()
    if "SLURM_NTASKS" in os.environ and int(os.environ["SLURM_NTASKS"]) > 1 and SLURMEnvironment.detect():
        return SLURMEnvironment()
    return None


def process_info() -> ProcessInfo:
    """This process's place in its DDP job (from the process group once joined, else the launcher's
    environment; rank 0 of 1 for a plain run)."""
    env = cluster_environment()
    local = env.local_rank() if env else 0
    if dist.is_available() and dist.is_initialized():
        return ProcessInfo(dist.get_rank(), local, dist.get_world_size())
    if env is not None:
        return ProcessInfo(env.global_rank(), local, env.world_size())
    return ProcessInfo()


def is_main_process() -> bool:
    return process_info().rank == 0


def wants_ddp(cfg: DictConfig) -> bool:
    strategy = str(cfg.trainer.get("strategy", "auto"))
    return strategy in DDP_STRATEGIES and requested_processes(cfg) > 1


def requested_processes(cfg: DictConfig) -> int:
    devices = cfg.trainer.get("devices", 1)
    nodes = int(cfg.trainer.get("num_nodes", 1) or 1)
    if not isinstance(devices, int) or devices < 1:
        raise ConfigError("trainer.devices", devices, "a positive number of processes per node for DDP")
    return devices * nodes


def needs_launch(cfg: DictConfig) -> bool:
    """True when the config asks for DDP and nobody has started its processes yet."""
    return wants_ddp(cfg) and cluster_environment() is None


def check_world(cfg: DictConfig, env: ClusterEnvironment) -> None:
    """A launcher that started N processes and a trainer that expects M would hang in the first fit."""
    if not wants_ddp(cfg):
        raise ConfigError(
            "trainer",
            f"strategy={cfg.trainer.get('strategy')}, devices={cfg.trainer.get('devices')}",
            f"this job was started as {env.world_size()} processes: use trainer=ddp with "
            f"trainer.devices={env.world_size()} (one process per device)",
        )
    if env.world_size() != requested_processes(cfg):
        raise ConfigError(
            "trainer.devices",
            cfg.trainer.get("devices"),
            f"{env.world_size()} x trainer.num_nodes: the launcher started {env.world_size()} processes "
            "(e.g. hydra.launcher.tasks_per_node)",
        )


def uses_cuda(trainer_cfg: Mapping[str, Any]) -> bool:
    """Whether a job with this ``trainer`` config runs on CUDA GPUs (Lightning's choice for it)."""
    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    return torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda")


def _backend(cfg: DictConfig) -> str:
    return "nccl" if uses_cuda(cfg.trainer) else "gloo"


@contextmanager
def process_group(cfg: DictConfig) -> Iterator[ClusterEnvironment | None]:
    """Join the process group of a DDP job (no-op for a single process) for one run.

    The group stays up after the run: a rank may run several experiments (as the tests do), and
    re-creating the group on the same port races with the last one's teardown. It ends with the
    process (or :func:`launch`'s worker)."""
    env = cluster_environment()
    if env is None:
        yield env
        return
    if not dist.is_initialized():
        check_world(cfg, env)
        os.environ["MASTER_ADDR"] = env.main_address
        os.environ["MASTER_PORT"] = str(env.main_port)
        backend = _backend(cfg)
        if backend == "nccl":
            torch.cuda.set_device(env.local_rank())
        dist.init_process_group(backend, rank=env.global_rank(), world_size=env.world_size())
        atexit.register(_leave_group)
        log.info("rank %d of %d joined (%s)", env.global_rank(), env.world_size(), backend)
    yield env
    dist.barrier()  # nobody leaves while rank 0 still writes (or trains a model the others wait on)


def _leave_group() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast(value: T, src: int = 0) -> T:
    """Rank ``src``'s value on every rank (the value itself outside DDP)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_sum(value: int) -> int:
    if not (dist.is_available() and dist.is_initialized()):
        return value
    # NCCL reduces only CUDA tensors (process_group set this rank's device); gloo takes CPU ones.
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    t = torch.tensor([value], dtype=torch.long, device=device)
    dist.all_reduce(t)
    return int(t.item())


# ---------------------------------------------------------------------- the local launcher
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(
    local_rank: int, fn: Callable[..., Any], world: int, port: int, threads: int, args: tuple
) -> None:
    os.environ.update(  # what torchrun sets, so that Lightning and this module see a torchrun job
        TORCHELASTIC_RUN_ID=f"unlearnbench-{port}",
        RANK=str(local_rank),
        LOCAL_RANK=str(local_rank),
        GROUP_RANK="0",
        WORLD_SIZE=str(world),
        LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(threads)
    logging.basicConfig(
        level=logging.INFO if local_rank == 0 else logging.WARNING,
        format=f"[rank {local_rank}] %(asctime)s %(name)s %(levelname)s - %(message)s",
    )
    try:
        fn(*args)
    finally:
        _leave_group()


def launch(fn: Callable[..., Any], cfg: DictConfig, *args: Any) -> None:
    """Run ``fn(cfg_resolved, *args)`` in ``trainer.devices`` processes on this machine (DDP ranks).

    The config is resolved here (the workers have no Hydra runtime), and each worker gets an equal
    share of the CPU threads unless ``num_threads`` says otherwise."""
    world = requested_processes(cfg)
    container = OmegaConf.to_container(cfg, resolve=True)
    threads = int(cfg.get("num_threads") or max(1, torch.get_num_threads() // world))
    log.info("launching %d DDP processes on this machine", world)
    mp.start_processes(
        _worker,
        args=(fn, world, _free_port(), threads, (container, *args)),
        nprocs=world,
        join=True,
        start_method="spawn",
    )
