"""Building a run's pools (see :mod:`unlearnbench.runtime.pools`): the retrained members of its
forget set and the members of its method, each computed once and read from the store after that.
Every member is a run of its own under another seed; a sweep over ``train_seed`` /
``unlearn_seed`` computes them as separate jobs, and the run with ``eval.pool.size=N`` gathers them.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from omegaconf import OmegaConf

from unlearnbench.io import stable_hash
from unlearnbench.methods import Method, UnlearningMethod
from unlearnbench.runtime import RunContext, UnlearnOutcome
from unlearnbench.runtime.pools import (
    MemberOutputs,
    Pools,
    cached_member,
    evaluation_key,
    member_outputs,
    retain_sample,
)

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PoolOptions:
    size: int = 0  # N; 0: no pools
    gather: bool = True  # compute the missing members and forget quality (false: only add this run's own)
    retain_max_samples: int = 512  # a member's retain accuracy: on at most this many retain samples

    @classmethod
    def from_cfg(cls, cfg: Any) -> PoolOptions:
        values = OmegaConf.to_container(cfg, resolve=True) if cfg is not None else {}
        return cls(**(values or {}))


def varies(method_cls: type[Method]) -> str:
    """A method that trains has an unlearning seed; a procedure (original, retrain, SISA) does not,
    so its members differ in their training seed."""
    return "unlearn_seed" if issubclass(method_cls, UnlearningMethod) else "train_seed"


def member_seeds(method_cls: type[Method], n: int) -> range:
    """The seeds of a method's members: unlearning seeds 0..N-1, or training seeds N..2N-1 (the
    retrained reference pool has training seeds 0..N-1)."""
    return range(n) if varies(method_cls) == "unlearn_seed" else range(n, 2 * n)


class PoolBuilder:
    def __init__(self, ctx: RunContext, method_cls: type[Method], params: Any, opts: PoolOptions) -> None:
        self.ctx, self.method_cls, self.params, self.opts = ctx, method_cls, params, opts
        self.retained = retain_sample(ctx.data, opts.retain_max_samples, ctx.seed)
        self.eval_key = evaluation_key(ctx.data, self.retained)

    def own_seed(self) -> int:
        return self.ctx.unlearn_seed if varies(self.method_cls) == "unlearn_seed" else self.ctx.train_seed

    def _pool_dir(self):
        """Where the method's members live: keyed by the method's config, the data and forget set, the
        base model and recipe, and (for a method that unlearns) the original it starts from."""
        reference = dataclasses.replace(self.ctx.reference_spec(), seed=0).as_dict()
        what = {
            "method": OmegaConf.to_container(self.ctx.cfg.method, resolve=True),
            "reference": reference,
            "varies": varies(self.method_cls),
            "original": self.ctx.original().key if varies(self.method_cls) == "unlearn_seed" else None,
        }
        return self.ctx.store.root / "pools" / f"{self.ctx.cfg.method.name}-{stable_hash(what)}"

    def method_member(self, seed: int, own: UnlearnOutcome | None = None) -> MemberOutputs:
        path = self._pool_dir() / f"member-{seed}-{self.eval_key}.npz"

        def compute() -> MemberOutputs:
            if own is not None:
                model = own.model
            else:
                kind = varies(self.method_cls)
                ctx = self.ctx.with_seeds(**{kind: seed})
                log.info("[pool] %s member %s=%d", self.ctx.cfg.method.name, kind, seed)
                model = self.method_cls.run(ctx, self.params).model
            return member_outputs(self.ctx.on_eval_device(model), self.ctx.data, self.retained)

        return cached_member(path, compute)

    def retrained_member(self, seed: int) -> MemberOutputs:
        ctx = self.ctx.with_seeds(train_seed=seed)
        spec = ctx.reference_spec()
        if not ctx.store.has(spec):  # trained first: a member's outputs live in its model's store entry
            log.info("[pool] retrained member train_seed=%d", seed)
            ctx.reference_retrained()
        path = ctx.store.entry_dir(spec)[1] / "eval" / f"member-{self.eval_key}.npz"
        return cached_member(
            path,
            lambda: member_outputs(
                ctx.on_eval_device(ctx.reference_retrained().model), ctx.data, self.retained
            ),
        )

    def add_own(self, outcome: UnlearnOutcome) -> None:
        """This run as a member of its method's pool (when its seed is one of the members')."""
        if self.own_seed() in member_seeds(self.method_cls, self.opts.size):
            self.method_member(self.own_seed(), own=outcome)

    def gather(self, outcome: UnlearnOutcome) -> Pools:
        """Both pools of size N, computing the members that are not stored yet."""
        n, own_seed = self.opts.size, self.own_seed()
        unlearned = [
            self.method_member(s, own=outcome if s == own_seed else None)
            for s in member_seeds(self.method_cls, n)
        ]
        retrained = [self.retrained_member(s) for s in range(n)]
        return Pools(unlearned, retrained, varies(self.method_cls))
