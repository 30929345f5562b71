"""A run's evaluation: one forward pass per split of the unlearned model, the inputs the enabled
sections read (the original's and the retrained reference's outputs), then every registered
section in turn. Returns the results.json sections; the artifacts write their files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from unlearnbench.evaluation.inputs import EvalInputs, original_outputs, reference_outputs
from unlearnbench.evaluation.registry import SECTIONS, EvalOptions
from unlearnbench.runtime import RunContext, UnlearnOutcome
from unlearnbench.runtime.outputs import predict
from unlearnbench.runtime.pools import Pools

log = logging.getLogger(__name__)


def evaluate_run(
    ctx: RunContext,
    outcome: UnlearnOutcome,
    run_dir: str | Path,
    memory: dict[str, Any],
    pools: Pools | None = None,
    sequence: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Evaluate the unlearned model; write its files into ``run_dir``. Returns each registered
    section's record (None for a section switched off in ``eval``). ``memory``: the peak memory
    of the unlearning step (:class:`~unlearnbench.runtime.memory.PeakMemory`); ``pools``: the
    run's pools (``eval.pool``), for forget quality; ``sequence``: one record per deletion request,
    when they came one after another."""
    opts = EvalOptions.from_cfg(ctx.cfg.eval)
    data = ctx.data
    splits = opts.evaluated_splits()
    extra = [s for s in splits if s not in opts.splits]
    if extra:
        log.info("also evaluating %s (the enabled sections of eval read them)", extra)
    model = ctx.on_eval_device(outcome.model)
    embeddings = opts.needs_embeddings()
    pooling = ctx.pooling
    after = {
        s: predict(model, data.eval_loader(s), embeddings=embeddings, pooling=pooling).sorted()
        for s in splits
    }
    inputs = EvalInputs(ctx, outcome, opts, after, None, None, memory, Path(run_dir), pools, sequence)
    if opts.needs_original():
        inputs.before = original_outputs(ctx, after if inputs.is_original else None)
    if opts.needs_reference():
        inputs.reference = reference_outputs(ctx, outcome, after)
    enabled = {s.name for s in opts.enabled()}
    records: dict[str, Any] = {}
    for section in SECTIONS.values():
        record = section.compute(inputs) if section.name in enabled else None
        if not section.writes_file:
            records[section.name] = record
    return records
