"""``hydra/launcher=submitit_slurm``: submitit's Slurm launcher, with a check of the request before
anything is submitted.

Before it submits the job array it asks ``sinfo`` what the partition offers (its nodes, CPUs and
memory per node, GPUs, time limit) and refuses, in one line, every ``hydra.launcher.*`` request that
no node of it can satisfy: more GPUs, CPUs or memory than a node has, a longer time limit, more
nodes, an unknown partition. A submission that Slurm refuses anyway (``sbatch``) is one line too,
not a traceback.
"""

# No `from __future__ import annotations`: Hydra's plugin scan runs this module outside
# sys.modules, where dataclasses cannot resolve string annotations.

import contextlib
import io
import logging
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra.core.utils import JobReturn
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

from unlearnbench.errors import ConfigError, UnlearnbenchError

log = logging.getLogger(__name__)

SINFO_FORMAT = "%N|%P|%c|%m|%G|%l"  # node | partition (default: name*) | CPUs | memory MB | gres | time limit
UNLIMITED = ("infinite", "unlimited", "none", "n/a", "")


@dataclass
class Node:
    name: str
    cpus: int
    memory_mb: int
    gres: str
    gpus: dict[str | None, int] = field(default_factory=dict)  # GPU type (None: any) -> count


@dataclass
class Partition:
    name: str
    default: bool
    time_limit: str  # as sinfo prints it
    time_limit_min: float | None  # None: unlimited
    nodes: list[Node] = field(default_factory=list)


def parse_gpus(gres: str) -> dict[str | None, int]:
    """GPUs of a node's gres (``gpu:2``, ``gpu:a100:4(S:0-1)``, ``(null)``) by type; None sums all."""
    out: dict[str | None, int] = {None: 0}
    for part in gres.split(","):
        fields = part.split("(")[0].strip().split(":")
        if fields[0] != "gpu":
            continue
        count = int(fields[-1]) if len(fields) > 1 and fields[-1].isdigit() else 1
        kind = fields[1] if len(fields) == 3 else None
        out[None] += count
        if kind is not None:
            out[kind] = out.get(kind, 0) + count
    return out


def parse_time_min(text: str) -> float | None:
    """A Slurm time (``infinite``, ``30``, ``30:00``, ``4:00:00``, ``1-12``, ``1-00:00:00``) in minutes."""
    text = text.strip()
    if text.lower() in UNLIMITED:
        return None
    days, _, rest = text.rpartition("-")
    parts = [float(p) for p in rest.split(":")]
    if days:  # days-hours[:minutes[:seconds]]
        hours, minutes, seconds = [*parts, 0.0, 0.0][:3]
        return float(days) * 1440 + hours * 60 + minutes + seconds / 60
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        return parts[0] + parts[1] / 60
    return parts[0] * 60 + parts[1] + parts[2] / 60


def _number(text: str) -> int:
    match = re.match(r"\d+", text.strip())
    return int(match.group()) if match else 0


def parse_sinfo(text: str) -> dict[str, Partition]:
    """The partitions in the output of ``sinfo -N -h -o SINFO_FORMAT`` (one line per node and partition)."""
    partitions: dict[str, Partition] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 6:
            continue
        node, name, cpus, memory, gres, limit = fields
        default = name.endswith("*")
        name = name.rstrip("*")
        try:
            limit_min = parse_time_min(limit)
        except ValueError:
            limit_min = None
        part = partitions.setdefault(name, Partition(name, default, limit, limit_min))
        part.default = part.default or default
        if node not in {n.name for n in part.nodes}:
            part.nodes.append(Node(node, _number(cpus), _number(memory), gres, parse_gpus(gres)))
    return partitions


def query_sinfo(timeout: float = 30) -> dict[str, Partition] | None:
    """What the cluster offers, from ``sinfo``; None (and a warning) when sinfo does not answer."""
    if shutil.which("sinfo") is None:
        raise UnlearnbenchError(
            "hydra/launcher=submitit_slurm needs a Slurm cluster, and sinfo is not on PATH "
            "(scripts/slurm_local.sh starts one on this machine)"
        )
    try:
        out = subprocess.run(
            ["sinfo", "-N", "-h", "-o", SINFO_FORMAT], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        log.warning("sinfo did not answer in %.0f s: the Slurm request is not checked before sbatch", timeout)
        return None
    if out.returncode != 0:
        first = (out.stderr.strip().splitlines() or ["no output"])[0]
        log.warning("sinfo failed (%s): the Slurm request is not checked before sbatch", first)
        return None
    return parse_sinfo(out.stdout)


def _int(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        raise TypeError(value)
    return int(value)


def check_request(params: Mapping[str, Any], partitions: Mapping[str, Partition]) -> None:
    """Refuse, in one line naming every ``hydra.launcher.<key>`` at fault, a request that no node of
    the partition can satisfy."""
    names = sorted(partitions)
    wanted = params.get("partition")
    if wanted is None:
        defaults = [p for p in partitions.values() if p.default]
        if not defaults:
            raise ConfigError(
                "hydra.launcher.partition", None, f"a partition: this cluster has no default; one of {names}"
            )
        part = defaults[0]
    elif str(wanted) in partitions:
        part = partitions[str(wanted)]
    else:
        raise ConfigError("hydra.launcher.partition", wanted, f"a partition of this cluster: one of {names}")
    if not part.nodes:
        return
    where = f"partition '{part.name}'"
    problems: list[ConfigError] = []

    def refuse(key: str, allowed: str) -> None:
        problems.append(ConfigError(f"hydra.launcher.{key}", params.get(key), allowed))

    try:
        tasks = max(1, _int(params.get("tasks_per_node")))
        nodes = _int(params.get("nodes")) or 1
        gpus = max(_int(params.get("gpus_per_node")), _int(params.get("gpus_per_task")) * tasks)
        cpus = (_int(params.get("cpus_per_task")) or 1) * tasks
        mem_gb = params.get("mem_gb")
    except (TypeError, ValueError):
        return  # not numbers: submitit and sbatch say so
    if nodes > len(part.nodes):
        refuse("nodes", f"at most {len(part.nodes)}: {where} has {len(part.nodes)} node(s) (sinfo)")
    most_gpus = max(n.gpus[None] for n in part.nodes)
    gres_seen = ", ".join(sorted({n.gres for n in part.nodes}))
    if gpus > most_gpus:
        key = "gpus_per_node" if _int(params.get("gpus_per_node")) >= gpus else "gpus_per_task"
        if most_gpus == 0:
            refuse(key, f"0 or null: {where} has no GPUs (sinfo gres {gres_seen})")
        else:
            refuse(key, f"at most {most_gpus}: {where} has {most_gpus} GPUs a node (sinfo gres {gres_seen})")
    gres = params.get("gres")
    if gres:
        asked = parse_gpus(str(gres))
        kinds = [k for k in asked if k is not None]
        kind = kinds[0] if kinds else None
        have = max(n.gpus.get(kind, 0) for n in part.nodes)
        if asked[None] > have:
            what = f"'{kind}' GPUs" if kind else "GPUs"
            refuse("gres", f"at most {have} {what} per node: {where} offers gres {gres_seen} (sinfo)")
    most_cpus = max(n.cpus for n in part.nodes)
    if cpus > most_cpus:
        per_task = most_cpus // tasks
        refuse(
            "cpus_per_task",
            f"at most {per_task} with tasks_per_node={tasks}: {where} has {most_cpus} CPUs per node (sinfo)",
        )
    most_mb = max(n.memory_mb for n in part.nodes)
    if mem_gb is not None and most_mb and float(mem_gb) * 1024 > most_mb:
        refuse("mem_gb", f"at most {most_mb // 1024}: {where} has {most_mb} MB per node (sinfo)")
    timeout = params.get("timeout_min")
    if part.time_limit_min is not None and timeout is not None and float(timeout) > part.time_limit_min:
        refuse(
            "timeout_min",
            f"at most {part.time_limit_min:g}: {where} has the time limit {part.time_limit} (sinfo)",
        )
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise UnlearnbenchError("; ".join(str(p) for p in problems))


def submission_error(exc: BaseException) -> UnlearnbenchError | None:
    """The one-line error of a submission that Slurm refused (sbatch failed), else None."""
    cause = exc.__cause__
    if isinstance(exc, FileNotFoundError) and "sbatch" in str(exc):
        return UnlearnbenchError("sbatch is not on PATH: no Slurm to submit to")
    if isinstance(cause, subprocess.CalledProcessError) and "sbatch" in str(cause.cmd):
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        return UnlearnbenchError(f"sbatch refused the job array, nothing was submitted: {' '.join(lines)}")
    return None


class CheckedSlurmLauncher(SlurmLauncher):
    """submitit's SlurmLauncher that checks the request against ``sinfo`` before it submits, and
    reports a refused submission in one line (see the module's docstring)."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        partitions = query_sinfo()
        if partitions is not None:
            check_request(self.params, partitions)
        # submitit echoes a failed sbatch's stderr; the error below says it once, in one line.
        held = io.StringIO()
        try:
            with contextlib.redirect_stderr(held):
                return super().launch(job_overrides, initial_job_idx)
        except Exception as exc:
            error = submission_error(exc)
            if error is None:
                raise
            held = io.StringIO()
            raise error from None
        finally:
            sys.stderr.write(held.getvalue())
