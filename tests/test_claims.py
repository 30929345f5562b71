"""The paper's claims, judged from a grid's runs: (a) DeepCUT closest to retraining among the
unlearning methods, (b) its utility drop from the original paired by seed, (c) its time against
retraining and SISA; and docs/results.md's verdict lines."""

from __future__ import annotations

from unlearnbench.io import atomic_write_json
from unlearnbench.report.claims import judge, render_results, sentence
from unlearnbench.report.tables import load_runs


def run(root, method: str, seed: int, forget_f1: float, test_f1: float, seconds: float) -> None:
    metrics = {
        s: {"accuracy": f, "f1_macro": f, "f1_micro": f, "n": 20}
        for s, f in (("forget", forget_f1), ("retain", 0.99), ("test", test_f1))
    }
    atomic_write_json(
        root / f"{method}-{seed}" / "results.json",
        {
            "schema_version": 2,
            "run": {
                "dataset": "bbc",
                "model": "m",
                "method": method,
                "forget": {"strategy": "random", "ratio": 0.05, "tag": "random-0.05"},
                "seed": seed,
            },
            "sizes": {},
            "metrics": metrics,
            "timing": {"unlearn_seconds": seconds, "total_seconds": seconds + 1},
            "method_params": {"name": method},
        },
    )


# per method: (forget F1 per seed, test F1 per seed, unlearning seconds per seed); retrain forgets to 0.80
GRID = {
    "original": ([1.00, 1.00, 1.00], [0.950, 0.940, 0.960], [0.0, 0.0, 0.0]),
    "retrain": ([0.80, 0.80, 0.80], [0.940, 0.930, 0.950], [100.0, 110.0, 90.0]),
    "sisa": ([0.90, 0.92, 0.91], [0.900, 0.890, 0.910], [40.0, 42.0, 38.0]),
    "finetune": ([0.95, 0.96, 0.94], [0.945, 0.935, 0.955], [10.0, 11.0, 9.0]),
    "deepcut": ([0.82, 0.81, 0.83], [0.940, 0.930, 0.945], [5.0, 6.0, 5.5]),
}


def write_grid(root, grid) -> None:
    for method, (forget, test, seconds) in grid.items():
        for seed in range(3):
            run(root, method, seed, forget[seed], test[seed], seconds[seed])


def test_the_three_claims_hold_where_deepcut_is_closest_cheap_and_keeps_utility(tmp_path) -> None:
    write_grid(tmp_path, GRID)
    frame, _ = load_runs([tmp_path])
    verdict = judge(frame)
    a, b, c = verdict["a"], verdict["b"], verdict["c"]
    assert a["holds"] and a["significant"] and a["ranking"] == ["deepcut", "sisa", "finetune"]
    assert a["measure"] == "forget-F1 gap to retraining"
    # paired by seed: (0.950-0.940 + 0.940-0.930 + 0.960-0.945) / 3 = 1.17 points, under the 2 allowed
    assert b["holds"] and abs(b["drop"] - 0.035 / 3) < 1e-9
    assert c["holds"] and all(c["significant"].values())
    assert abs(c["ratios"]["retrain"] - 5.5 / 100.0) < 1e-9 and abs(c["ratios"]["sisa"] - 5.5 / 40.0) < 1e-9


def test_a_claim_that_fails_says_who_wins_and_by_how_much(tmp_path) -> None:
    grid = dict(GRID)
    grid["deepcut"] = ([0.97, 0.98, 0.99], [0.80, 0.82, 0.81], [150.0, 160.0, 155.0])
    write_grid(tmp_path, grid)
    frame, _ = load_runs([tmp_path])
    verdict = judge(frame)
    a, b, c = verdict["a"], verdict["b"], verdict["c"]
    assert not a["holds"] and a["rank"] == 3 and a["rival"] == "sisa"
    # sisa's gap 0.11 against DeepCUT's 0.18: 7.0 points behind
    assert abs(a["margin"] + 0.07) < 1e-9
    assert "**fails**: DeepCUT is #3 of 3" in sentence(a)
    assert "sisa leads with 11.0, 7.0 points better" in sentence(a)
    assert not b["holds"] and "a drop of 14.0 ±" in sentence(b)
    assert not c["holds"] and c["ratios"]["retrain"] > 1 and "(more)" in sentence(c)


def test_without_deepcut_or_references_there_is_no_verdict_and_the_doc_says_so(tmp_path) -> None:
    write_grid(tmp_path, {m: v for m, v in GRID.items() if m in ("finetune", "sisa")})
    frame, _ = load_runs([tmp_path])
    assert not any(v["judged"] for v in judge(frame).values())
    text, _ = render_results(frame, [], "# Results")
    assert "holds on 0 of 0 forget designs" in text and "no verdict (missing: deepcut" in text


def test_the_document_counts_designs_and_tables_each(tmp_path) -> None:
    write_grid(tmp_path, GRID)
    frame, failures = load_runs([tmp_path])
    text, facts = render_results(frame, failures, "# Results")
    assert facts[("bbc", "m", "random-0.05")]["a"]["holds"]
    assert "(a) DeepCUT forgets better than the baselines**: holds on 1 of 1 forget designs" in text
    assert "### bbc, random-0.05 (seeds 0, 1, 2; forgetting: forget-F1 gap to retraining)" in text
    assert "| deepcut " in text and "gap F1 forget" in text and "× retrain" in text


def test_a_tie_for_first_is_not_forgetting_better(tmp_path) -> None:
    grid = dict(GRID)
    grid["finetune"] = (GRID["deepcut"][0], *GRID["finetune"][1:])  # the same forget F1 as DeepCUT
    write_grid(tmp_path, grid)
    a = judge(load_runs([tmp_path])[0])["a"]
    assert a["rank"] == 1 and not a["holds"] and not a["significant"]
    assert sentence(a).startswith("**fails**: DeepCUT ties finetune for first of 3")
