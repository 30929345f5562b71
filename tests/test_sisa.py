"""SISA: a seeded shard/slice partition, checkpoints reused from the cache, only affected shards
retrained from the checkpoint before their first affected slice, and the two aggregations."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from unlearnbench.errors import ConfigError
from unlearnbench.methods.sisa import Sisa, SisaEnsemble, aggregate, assign, partition
from unlearnbench.pipeline import prepare, run_experiment
from unlearnbench.runtime import ModelStore, RunContext
from unlearnbench.runtime.outputs import predict

# One step per checkpoint: a slice union of this tiny split fits in one batch.
SMALL = ["method=sisa", "method.shards=3", "method.slices=3", "method.epochs=1", "method.batch_size=64"]


@pytest.fixture(autouse=True)
def one_thread():
    """The tiny model trains faster on one thread, and much faster on a CPU shared with other jobs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def context(cfg, run_dir) -> tuple[RunContext, object]:
    _, params, data = prepare(cfg)
    return RunContext(cfg, data, ModelStore(cfg.paths.cache_dir), run_dir), params


def test_assignment_is_seeded_stable_under_removal_and_a_partition() -> None:
    ids = [f"doc-{i}" for i in range(600)]
    where = assign(ids, seed=0, shards=4, slices=3)
    assert np.array_equal(where, assign(ids, seed=0, shards=4, slices=3))
    assert not np.array_equal(where, assign(ids, seed=1, shards=4, slices=3))
    assert set(where[:, 0]) == {0, 1, 2, 3} and set(where[:, 1]) == {0, 1, 2}
    kept = np.arange(0, 600, 7)  # removing the others moves no sample
    assert np.array_equal(assign([ids[i] for i in kept], 0, 4, 3), where[kept])

    indices = np.random.default_rng(0).permutation(600)[:500]
    plan = partition(indices, ids, seed=0, shards=4, slices=3)
    parts = [part for shard in plan for part in shard]
    assert sum(len(p) for p in parts) == 500
    assert set(np.concatenate(parts).tolist()) == set(indices.tolist())  # disjoint and covering
    for k, shard in enumerate(plan):
        for sl, part in enumerate(shard):
            assert len(part) > 0 and all(tuple(where[i]) == (k, sl) for i in part)


def test_aggregation_mean_prob_and_vote_on_hand_made_probabilities() -> None:
    # Two members vote class 0 weakly, one is sure of class 1: the vote says 0, the mean says 1.
    majority = torch.tensor([[[0.40, 0.35, 0.25]], [[0.40, 0.35, 0.25]], [[0.00, 1.00, 0.00]]])
    # A 1-1 vote between classes 0 and 2; class 1 has the highest mean probability but no vote, so
    # the vote breaks the tie by mean probability: class 2 (0.30) over class 0 (0.25).
    tie = torch.tensor([[[0.50, 0.45, 0.05]], [[0.00, 0.45, 0.55]]])
    for probs in (majority, tie):
        mean = aggregate(probs, "mean_prob")
        assert torch.allclose(mean.exp(), probs.mean(0), atol=1e-6)  # log of the mean probability
        assert torch.allclose(aggregate(probs, "vote").exp().sum(-1), torch.ones(1))  # a distribution
    assert aggregate(majority, "mean_prob").argmax(-1).tolist() == [1]
    assert aggregate(majority, "vote").argmax(-1).tolist() == [0]
    assert aggregate(tie, "mean_prob").argmax(-1).tolist() == [1]
    assert aggregate(tie, "vote").argmax(-1).tolist() == [2]
    with pytest.raises(ValueError, match="aggregation"):
        aggregate(tie, "median")


class Fixed(nn.Module):
    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.tensor(logits))

    def forward(self, input_ids, attention_mask=None):
        return SimpleNamespace(logits=self.logits.expand(len(input_ids), -1))


def test_ensemble_forward_aggregates_member_softmax() -> None:
    members = [Fixed([2.0, 0.0, 0.0]), Fixed([0.0, 3.0, 0.0]), Fixed([1.5, 0.0, 0.0])]
    ids, mask = torch.ones(4, 5, dtype=torch.long), torch.ones(4, 5, dtype=torch.long)
    expected = torch.stack([m.logits.softmax(-1) for m in members])[:, None].expand(-1, 4, -1)
    for how in ("mean_prob", "vote"):
        out = SisaEnsemble(members, how, [0, 1, 2])(input_ids=ids, attention_mask=mask)
        assert torch.allclose(out.logits, aggregate(expected, how))


def test_params_are_checked() -> None:
    base = {"name": "sisa", "lr": 1e-3, "batch_size": 8, "shards": 2, "slices": 2}
    assert Sisa.parse_params(base).aggregation == "mean_prob"
    for bad, key in [
        ({"shards": 0}, "method.shards"),
        ({"slices": 0}, "method.slices"),
        ({"aggregation": "median"}, "method.aggregation"),
        # no stop rule: SISA retrains to the full budget
        ({"stop": {"rule": "forget_f1_below_val"}}, r"method\.stop=.*not in .SisaParams"),
    ]:
        with pytest.raises(ConfigError, match=key):
            Sisa.parse_params({**base, **bad})


def test_unlearning_retrains_only_affected_shards_from_the_last_unaffected_checkpoint(
    make_cfg, tmp_path
) -> None:
    cache = tmp_path / "cache"
    ctx, params = context(make_cfg(*SMALL, cache_dir=cache), tmp_path)
    ids, train = ctx.data.records.ids, ctx.data.splits.train
    plan = partition(train, ids, ctx.seed, 3, 3)
    # Shard 0 loses a sample of slice 2, shard 1 one of slice 3; shard 2 keeps all its data.
    forget = [ids[plan[0][1][0]], ids[plan[1][2][-1]]]
    (tmp_path / "ids.txt").write_text("\n".join(forget) + "\n")
    cfg = make_cfg(*SMALL, "forget=ids", f"forget.path={tmp_path / 'ids.txt'}", cache_dir=cache)
    ctx, params = context(cfg, tmp_path)

    outcome = Sisa.run(ctx, params)
    info = outcome.info
    assert info["original_ensemble"]["trained"] == 9 and not info["original_ensemble"]["from_cache"]
    assert info["affected_shards"] == [0, 1] and info["first_affected_slice"] == {"0": 2, "1": 3}
    assert info["retrained_shards"] == [0, 1] and info["n_retrained_shards"] == 2
    assert info["retrained_slices"] == [[0, 2], [0, 3], [1, 3]] and info["n_retrained_slices"] == 3
    assert info["resumed_from_slice"] == {"0": 1, "1": 2}
    # Trained anew: exactly the affected checkpoints; each started from the stored one before it.
    assert info["checkpoint_status"] == {
        "0": ["cached", "trained", "trained"],
        "1": ["skipped", "cached", "trained"],
        "2": ["skipped", "skipped", "cached"],
    }
    assert len(list((cache / "models").glob("sisa-*[!k]"))) == 9 + 3  # nothing else was stored
    # Each new checkpoint is keyed by its data alone: the original's are found again in the cache.
    original_shards = Sisa.build(ctx, params, train)
    assert original_shards.status_table() == {str(k): ["skipped", "skipped", "cached"] for k in range(3)}
    metas = [json.loads(p.read_text()) for p in (cache / "models").glob("sisa-*/meta.json")]
    new = {(m["shard"], m["slice"]): m for m in metas if m["key"] not in original_shards.keys.values()}
    assert sorted(new) == [(0, 2), (0, 3), (1, 3)]
    assert new[0, 2]["samples"] == len(plan[0][0]) + len(plan[0][1]) - 1  # D_f left out
    assert outcome.stats.steps == sum(m["fit"]["steps"] for m in new.values()) > 0
    assert outcome.stats.seconds == pytest.approx(sum(m["fit"]["seconds"] for m in new.values()))

    # The unaffected shard is bit-identical to the original ensemble's; the affected ones changed.
    original = Sisa.ensemble(original_shards, "mean_prob")
    before = {k: m.state_dict() for k, m in zip(original.shard_ids, original.members, strict=True)}
    after = {k: m.state_dict() for k, m in zip(outcome.model.shard_ids, outcome.model.members, strict=True)}
    assert all(torch.equal(before[2][n], after[2][n]) for n in before[2])
    for k in (0, 1):
        assert any(not torch.equal(before[k][n], after[k][n]) for n in before[k])
    loader = ctx.data.eval_loader("test")
    assert np.array_equal(
        predict(original.members[2], loader).logits, predict(outcome.model.members[2], loader).logits
    )

    again = Sisa.run(ctx, params)  # the same request again: every checkpoint comes from the cache
    assert again.info["unlearn_from_cache"] and again.info["unlearn_trained"] == 0
    assert again.info["original_ensemble"]["from_cache"]
    assert again.stats == outcome.stats  # the time of the retraining, read back from the cache


def test_pipeline_writes_sisa_results_and_the_ensemble(make_cfg, tmp_path) -> None:
    cfg = make_cfg(
        *SMALL, "method.shards=2", "method.aggregation=vote", "save_model=true", "train.max_steps=1"
    )
    results = run_experiment(cfg, tmp_path)
    info = results["method_info"]
    assert results["run"]["method"] == "sisa" and info["aggregation"] == "vote"
    assert results["timing"]["unlearn_seconds"] > 0 and info["n_retrained_shards"] >= 1
    assert set(info["original_ensemble"]["metrics"]) == {"forget", "test"}
    assert 0.0 <= results["metrics"]["test"]["accuracy"] <= 1.0
    saved = json.loads((tmp_path / "model" / "sisa.json").read_text())
    assert saved == {"aggregation": "vote", "shards": [0, 1]}
    assert all((tmp_path / "model" / f"shard-{k}" / "config.json").exists() for k in range(2))
