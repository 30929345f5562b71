"""A benchmark run: the sections a mode's plan and ``--only`` select, measured in this process one
after the other, their figures saved (``--json``) after each, then the document written; and the
single profiled run (``--profile-run``)."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import torch

from unlearnbench import pipeline
from unlearnbench.bench.common import GPU_BASE, NO_ANALYSES, QUIET, TINY, compose_cfg
from unlearnbench.bench.counting import count_sweep
from unlearnbench.bench.document import merge, render, what_runs, write_doc
from unlearnbench.bench.evaluation import eval_throughput
from unlearnbench.bench.gpu import precision_compile
from unlearnbench.bench.memory import peak_memory
from unlearnbench.bench.plans import MODES, PROFILE_RUN
from unlearnbench.bench.retrain import unlearn_vs_retrain
from unlearnbench.bench.scaling import scaling, scaling_plot
from unlearnbench.bench.stop_check import stop_check_cost
from unlearnbench.bench.throughput import throughput
from unlearnbench.io import atomic_write_text, package_versions


class Machine(TypedDict):
    cpu: str
    cores: int | None
    torch_threads: int
    gpu: str | None
    python: str
    platform: str


@dataclass
class Options:
    """What a benchmark run measures (the command line's flags) and where it writes."""

    mode: str = "quick"
    only: str = "abcdseg"
    out: Path = Path("docs/performance.md")
    json: str | None = None
    cache: str | None = None
    b_methods: str | None = None  # (b)'s methods instead of the mode's: a comma list, or "all"
    seeds: str | None = None  # (b)'s seeds instead of the mode's: a comma list
    threads: int = 1
    argv: list[str] = field(default_factory=list)  # as given, for the document's header


def machine() -> Machine:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def profile_run(cache: str | None, threads: int) -> dict[str, Any]:
    """PROFILE_RUN once (for py-spy): its results.json timing and sizes."""
    torch.set_num_threads(threads)
    store = Path(cache or tempfile.mkdtemp(prefix="bench-cache-"))
    res = pipeline.run_experiment(compose_cfg(PROFILE_RUN, store), Path(tempfile.mkdtemp(prefix="bench-p-")))
    return {"timing": res["timing"], "sizes": res["sizes"]}


def plan_of(opts: Options) -> dict[str, Any]:
    """The mode's plan with (b)'s methods and seeds as the options override them."""
    plan = MODES[opts.mode]
    if opts.b_methods:
        every = MODES["full"]["b"]["methods"]
        methods = every if opts.b_methods == "all" else opts.b_methods.split(",")
        plan = {**plan, "b": {**plan["b"], "methods": methods}}
    if opts.seeds:
        plan = {**plan, "b": {**plan["b"], "seeds": [int(s) for s in opts.seeds.split(",")]}}
    return plan


def measure(opts: Options) -> dict[str, Any]:
    """Run the selected sections, save the figures after each (``opts.json``), write the document
    (``opts.out``). Returns the figures."""
    torch.set_num_threads(opts.threads)
    plan = plan_of(opts)
    cache = Path(opts.cache or tempfile.mkdtemp(prefix="bench-cache-"))
    t0 = time.perf_counter()
    fig: dict[str, Any] = {
        "mode": opts.mode,
        "command": shlex.join(["python", "scripts/benchmark.py", *what_runs(opts.argv)]),
        "machine": machine(),
        "versions": package_versions(),
    }
    timings: dict[str, float] = {}

    def save(**partial: Any) -> None:  # after every section, and within a long one: a run stopped later
        if opts.json:  # keeps what it measured
            figures = {**fig, **partial, "seconds": timings}
            atomic_write_text(opts.json, json.dumps(figures, indent=1, default=str))

    def section(key: str, fn: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        fig[key] = fn()
        timings[key] = time.perf_counter() - t
        save()
        print(f"[{key}] {timings[key]:.0f}s: {json.dumps(fig[key], default=str)[:600]}", flush=True)
        return fig[key]

    quiet = [*QUIET, *(GPU_BASE if opts.mode == "gpu" else [])]
    if opts.mode == "gpu" and not torch.cuda.is_available():
        raise SystemExit("--mode gpu needs a CUDA device (torch.cuda.is_available() is False)")
    run_sections(opts, plan, cache, quiet, section, save)
    fig["f"] = peak_memory()
    timings["total"] = time.perf_counter() - t0
    fig["seconds"] = timings
    fig["finished"] = time.strftime("%Y-%m-%d %H:%M")
    save()
    write_doc(Path(opts.out), render(merge([fig])))
    print(f"wrote {opts.out} in {fig['seconds']['total']:.0f}s", file=sys.stderr)
    return fig


def run_sections(
    opts: Options,
    plan: dict[str, Any],
    cache: Path,
    quiet: Sequence[str],
    section: Callable[[str, Callable[[], Any]], Any],
    save: Callable[..., None],
) -> None:
    """Each section of ``plan`` that ``opts.only`` names, in the document's order but (g) first;
    ``section(key, measure)`` runs and records one, ``save(**partial)`` saves the figures so far."""
    only = opts.only
    if "g" in only and "g" in plan:
        p = plan["g"]
        section(
            "g",
            lambda: {
                shape: precision_compile(
                    compose_cfg([*quiet, *overrides], cache), arms, p["steps"], p["warmup"], p["repeats"]
                )
                for shape, (overrides, arms) in p["shapes"].items()
            },
        )
    if "a" in only and "a" in plan:
        p, q = plan["a"], plan["a_tiny"]
        section(
            "a", lambda: throughput(compose_cfg([*quiet, *p["overrides"]], cache), p["steps"], p["repeats"])
        )
        section(
            "a_tiny",
            lambda: throughput(compose_cfg([*quiet, *q["overrides"]], cache), q["steps"], q["repeats"]),
        )
    if "b" in only:
        b = plan["b"]
        section(
            "b",
            lambda: unlearn_vs_retrain(
                b["datasets"],
                b["methods"],
                b["ratios"],
                b["seeds"],
                cache,
                [*quiet, *NO_ANALYSES, *b["base"]],
                progress=lambda rows: save(b=rows),
            ),
        )
    if "c" in only and "c" in plan:
        c = plan["c"]
        scale = section(
            "c",
            lambda: scaling(
                [*quiet, *NO_ANALYSES, *c["base"]],
                c["sizes"],
                c["forgets"],
                c["fixed_forget"],
                c["fixed_size"],
                cache,
                c["repeats"],
            ),
        )
        scaling_plot(scale, Path(opts.out).parent / "performance_scaling.png")
    if "d" in only:
        d = plan["d"]
        section(
            "d",
            lambda: eval_throughput(compose_cfg([*quiet, *d["overrides"]], cache), d["split"], d["repeats"]),
        )
    if "s" in only and "s" in plan:
        s = plan["s"]
        section(
            "s",
            lambda: stop_check_cost(compose_cfg([*quiet, *s["overrides"]], cache), s["cap"], s["repeats"]),
        )
    if "e" in only and "e" in plan:
        e = plan["e"]
        fresh = Path(tempfile.mkdtemp(prefix="bench-e-"))
        section(
            "e",
            lambda: count_sweep(e["methods"], e["ratios"], e["seeds"], fresh / "cache", TINY, fresh / "runs"),
        )
