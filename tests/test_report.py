"""The report: mean, std and 95 % CI over seeds (shown as mean ± CI half-width), bold only where a
Welch t-test says a method beats the runner-up, time ratio to retrain, failed runs listed, figures."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from unlearnbench.cli.report import main
from unlearnbench.io import atomic_write_json
from unlearnbench.report import load_runs, summarize, write_report
from unlearnbench.report.stats import mean_ci
from unlearnbench.report.tables import LEGEND


def fake_run(
    root,
    method: str,
    seed: int,
    test_f1: float,
    seconds: float,
    params: dict | None = None,
    sections: dict | None = None,
    adapter: str | None = None,
) -> None:
    """A schema-1 run; ``sections``: more results.json sections (e.g. ``forget_quality``)."""
    metrics = {s: {"accuracy": test_f1, "f1_macro": test_f1, "n": 10} for s in ("forget", "retain", "test")}
    atomic_write_json(
        root / f"{method}-{seed}" / "results.json",
        {
            **(sections or {}),
            "schema_version": 1,
            "run": {
                "dataset": "bbc",
                "model": "m",
                **({"adapter": adapter} if adapter else {}),
                "method": method,
                "forget": {"tag": "random-0.05"},
                "seed": seed,
            },
            "sizes": {},
            "metrics": metrics,
            "timing": {"unlearn_seconds": seconds, "total_seconds": seconds + 1},
            "method_params": {"name": method, "lr": 1e-4, **(params or {})},
        },
    )


def test_summary_over_seeds_and_ratio_to_retrain(tmp_path, capsys) -> None:
    for seed, (f1, t) in enumerate([(0.90, 10.0), (0.94, 30.0)]):
        fake_run(tmp_path, "retrain", seed, f1, t)
        fake_run(tmp_path, "deepcut", seed, f1 - 0.1, t / 10)
    atomic_write_json(tmp_path / "broken" / "error.json", {"type": "ValueError", "message": "boom"})
    frame, failures = load_runs([tmp_path])
    assert failures == [{"run_dir": str(tmp_path / "broken"), "type": "ValueError", "message": "boom"}]
    summary = summarize(frame).set_index("method")
    assert summary.loc["retrain", "test_f1_macro_mean"] == pytest.approx(0.92)
    assert summary.loc["retrain", "test_f1_macro_std"] == pytest.approx(0.028284, abs=1e-5)
    assert summary.loc["deepcut", "ratio_to_retrain_mean"] == pytest.approx(0.1)
    assert summary.loc["deepcut", "forget_f1_gap_mean"] == pytest.approx(0.1)
    assert summary.loc["retrain", "forget_f1_gap_mean"] == 0.0
    assert summary.loc["deepcut", "seeds"] == 2
    assert list(summary.index) == ["retrain", "deepcut"]

    assert main([str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "92.0 ± 25.4" in printed and "FAILED" in printed  # ± the 95 % CI: t(0.975, 1) * 2.8 / sqrt(2)
    on_disk = pd.read_csv(tmp_path / "results.csv").set_index("method")  # one row per method
    assert on_disk.loc["retrain", "test_f1_macro_std"] == pytest.approx(0.028284, abs=1e-5)
    assert on_disk.loc["retrain", "test_f1_macro_ci95"] == pytest.approx(0.254124, abs=1e-5)
    assert on_disk.loc["retrain", "test_f1_macro_n"] == 2
    assert list(on_disk.index) == ["retrain", "deepcut"]
    assert on_disk.loc["deepcut", "ratio_to_retrain_mean"] == pytest.approx(0.1)
    assert on_disk.loc["retrain", "test_f1_macro_mean"] == pytest.approx(0.92)


def test_a_hyper_parameter_sweep_gets_one_row_per_setting(tmp_path) -> None:
    for seed in (0, 1):
        fake_run(tmp_path / "a", "deepcut", seed, 0.9, 1.0, {"gamma": 0.1, "stop": {"rule": "none"}})
        fake_run(tmp_path / "b", "deepcut", seed, 0.8, 1.0, {"gamma": 1.0, "stop": {"rule": "none"}})
    summary = summarize(load_runs([tmp_path])[0]).set_index("variant")
    assert summary.loc["gamma=0.1", "test_f1_macro_mean"] == pytest.approx(0.9)
    assert summary.loc["gamma=1.0", "test_f1_macro_mean"] == pytest.approx(0.8)
    assert summary.loc["gamma=1.0", "seeds"] == 2


def test_lora_runs_are_rows_of_their_own_compared_with_lora_retraining(tmp_path) -> None:
    for seed in (0, 1):
        for adapter, f1 in (("none", 0.9), ("lora", 0.7)):
            fake_run(tmp_path / adapter, "retrain", seed, f1, 10.0, adapter=adapter)
            fake_run(tmp_path / adapter, "deepcut", seed, f1 - 0.05, 1.0, adapter=adapter)
    summary = summarize(load_runs([tmp_path])[0]).set_index(["model", "method"])
    assert summary.loc[("m", "deepcut"), "test_f1_macro_mean"] == pytest.approx(0.85)
    assert summary.loc[("m+lora", "deepcut"), "test_f1_macro_mean"] == pytest.approx(0.65)
    # the gap is to the retrained model of the same fine-tuning (LoRA against LoRA), not a mix
    assert summary.loc[("m+lora", "deepcut"), "forget_f1_gap_mean"] == pytest.approx(0.05)


def test_report_on_a_missing_dir_fails_clearly(tmp_path) -> None:
    with pytest.raises(SystemExit):
        main([str(tmp_path / "nope")])


def fake_run_v2(root, method: str, seed: int, ratio: float, forget_f1: float, test_f1: float) -> None:
    """A schema-2 run: the evaluation sections and embeddings.npz."""
    run_dir = root / f"{method}-{ratio}-{seed}"
    metrics = {
        s: {"accuracy": f, "f1_macro": f, "f1_micro": f, "n": 10}
        for s, f in (("forget", forget_f1), ("retain", 0.99), ("test", test_f1))
    }
    rng = np.random.default_rng(seed)
    split = np.array(["forget"] * 10 + ["retain"] * 60 + ["test"] * 30)
    label = rng.integers(0, 3, len(split))
    centers = np.eye(3, 8) * 4
    before = centers[label] + rng.normal(size=(len(split), 8))
    after = before + (split == "forget")[:, None] * 3 * rng.normal(size=(len(split), 8))
    run_dir.mkdir(parents=True)
    np.savez(
        run_dir / "embeddings.npz",
        index=np.arange(len(split)),
        split=split,
        label=label,
        label_names=np.array(["business", "sport", "tech"]),
        after=after.astype(np.float16),
        before=before.astype(np.float16),
    )
    gap = abs(forget_f1 - 0.9)
    atomic_write_json(
        run_dir / "results.json",
        {
            "schema_version": 2,
            "run": {
                "dataset": "bbc",
                "model": "m",
                "method": method,
                "forget": {"strategy": "random", "ratio": ratio, "tag": f"random-{ratio}"},
                "seed": seed,
            },
            "sizes": {},
            "metrics": metrics,
            "reference": {
                "forget": {
                    "f1_gap": gap,
                    "accuracy_gap": gap,
                    "agreement": 0.9,
                    "js_divergence": 0.02,
                    "n": 10,
                },
                "test": {
                    "f1_gap": 0.0,
                    "accuracy_gap": 0.0,
                    "agreement": 0.95,
                    "js_divergence": 0.01,
                    "n": 10,
                },
            },
            "mia": {"attacks": {"loss": {"auc": 0.5 + gap, "auc_gap": gap}}},
            "latent": {
                w: {"forget": {"nearest_own": 0.9, "margin": 0.1, "silhouette": s, "n": 10, "n_own": 10}}
                for w, s in (("before", 0.3), ("after", -0.1))
            },
            "cost": {
                "seconds": 1.0,
                "steps": 5,
                "samples": 50,
                "peak_rss_mb": 900.0,
                "peak_gpu_mb": None,
                "ratio_to_retrain": {"seconds": 0.1, "steps": 0.05, "samples": 0.1, "peak_rss_mb": None},
            },
            "timing": {"unlearn_seconds": 1.0 if method != "retrain" else 10.0, "total_seconds": 12.0},
            "method_params": {"name": method},
        },
    )


def test_report_reads_the_evaluation_sections_and_draws_the_figures(tmp_path, capsys) -> None:
    for ratio in (0.01, 0.05):
        for seed in (0, 1):
            fake_run_v2(tmp_path / "sweep", "retrain", seed, ratio, 0.9, 0.9)
            fake_run_v2(tmp_path / "sweep", "deepcut", seed, ratio, 0.8 - ratio, 0.88 + seed / 100)
            fake_run_v2(tmp_path / "sweep", "finetune", seed, ratio, 0.99, 0.9)
    assert main([str(tmp_path / "sweep"), "--out", str(tmp_path / "report")]) == 0
    printed = capsys.readouterr().out
    assert "MIA AUC" in printed and "JS forget" in printed
    summary = pd.read_csv(tmp_path / "report" / "results.csv").set_index(["forget", "method"])
    row = summary.loc[("random-0.05", "deepcut")]
    assert row.forget_f1_gap_mean == pytest.approx(0.15) == row.ref_forget_f1_gap_mean
    assert row.mia_loss_auc_mean == pytest.approx(0.65) and row.forget_ratio_mean == 0.05
    assert row.latent_forget_silhouette_after_mean == pytest.approx(-0.1)
    assert row.cost_steps_ratio_mean == pytest.approx(0.05) and row.peak_rss_mb_mean == 900.0
    pngs = sorted(p.name for p in (tmp_path / "report").glob("*.png"))
    assert pngs == [
        "embeddings_bbc_m_random-0.01.png",
        "embeddings_bbc_m_random-0.05.png",
        "tradeoff_bbc_m.png",
        "vs_forget_ratio_bbc_m.png",
    ]
    assert all((tmp_path / "report" / p).stat().st_size > 10_000 for p in pngs)


def test_without_a_retrain_run_the_gap_comes_from_the_runs_own_reference(tmp_path) -> None:
    fake_run_v2(tmp_path, "deepcut", 0, 0.05, 0.7, 0.9)
    frame, _ = load_runs([tmp_path])
    assert frame.forget_f1_gap.iloc[0] == pytest.approx(0.2) and frame.ratio_to_retrain.iloc[0] == 0.1


def test_markdown_doc_holds_header_table_and_notes(tmp_path) -> None:
    from unlearnbench.report import write_markdown_doc

    fake_run(tmp_path / "runs", "retrain", 0, 0.9, 10.0)
    fake_run(tmp_path / "runs", "deepcut", 0, 0.8, 2.0)
    text = write_markdown_doc([tmp_path / "runs"], tmp_path / "docs" / "x.md", "# Title", "Notes.\n")
    assert text == (tmp_path / "docs" / "x.md").read_text()
    assert text.startswith("# Title\n\n| dataset") and text.endswith("Notes.\n") and "| deepcut" in text


def test_report_writes_its_table_as_a_document_that_says_where_it_came_from(tmp_path) -> None:
    fake_run(tmp_path / "runs", "retrain", 0, 0.9, 50.0)
    fake_run(tmp_path / "runs", "deepcut", 0, 0.8, 5.0)
    doc = tmp_path / "docs" / "main.md"
    assert main([str(tmp_path / "runs"), "--doc", str(doc), "--title", "Main", "--no-plots"]) == 0
    text = doc.read_text()
    assert text.startswith("# Main\n\n_Written by `unlearnbench-report ")
    assert "from 2 runs (seeds [0])" in text and "| deepcut" in text and "| retrain" in text


def test_best_cell_per_column_is_bold_among_unlearning_methods(tmp_path) -> None:
    for seed in (0, 1):
        fake_run(tmp_path, "original", seed, 0.99, 0.0)  # best test F1, but a yardstick: not ranked
        fake_run(tmp_path, "retrain", seed, 0.95, 100.0)
        fake_run(tmp_path, "finetune", seed, 0.90, 50.0)
        fake_run(tmp_path, "deepcut", seed, 0.93, 10.0)
    write_report([tmp_path], tmp_path, plots=False)
    rows = {
        line.split("|")[3].strip(): line
        for line in (tmp_path / "results.md").read_text().splitlines()
        if line.startswith("| bbc")
    }
    # deepcut is better than finetune on every seed and neither varies: Welch's t = inf, p = 0
    assert "**93.0 ± 0.0**" in rows["deepcut"] and "**10.0 ± 0.0**" in rows["deepcut"]  # test F1, seconds
    assert "**" not in rows["original"] and "**" not in rows["retrain"]
    assert "**90.0" not in rows["finetune"]
    tex = (tmp_path / "results.tex").read_text()
    assert r"\textbf{93.0 $\pm$ 0.0}" in tex and r"\textbf{90.0" not in tex


def test_a_killed_job_is_listed_as_incomplete(tmp_path) -> None:
    fake_run(tmp_path, "deepcut", 0, 0.9, 1.0)
    killed = tmp_path / "method=finetune"
    (killed / ".hydra").mkdir(parents=True)
    (killed / ".hydra" / "config.yaml").write_text("seed: 0\n")  # started, then SIGKILLed
    frame, failures = load_runs([tmp_path])
    assert len(frame) == 1
    assert [(f["run_dir"], f["type"]) for f in failures] == [(str(killed), "Incomplete")]


def test_a_thousand_runs_report_in_seconds(tmp_path) -> None:
    methods = ["original", "retrain", "finetune", "gradient_ascent", "deepcut"]
    rng = np.random.default_rng(0)
    for i in range(1000):
        fake_run(
            tmp_path / "sweep", methods[i % 5], i // 5, float(rng.uniform(0.5, 1)), float(rng.uniform(1, 9))
        )
    start = time.perf_counter()
    write_report([tmp_path / "sweep"], tmp_path / "out", plots=True)
    seconds = time.perf_counter() - start
    summary = pd.read_csv(tmp_path / "out" / "results.csv")
    assert summary.seeds.tolist() == [200] * 5
    assert seconds < 15, f"report of 1,000 runs took {seconds:.1f} s"


def test_whole_class_runs_get_a_kept_classes_test_column(tmp_path) -> None:
    for method, f1 in (("retrain", 0.7), ("deepcut", 0.6)):
        fake_run(tmp_path, method, 0, f1, 1.0)
        path = tmp_path / f"{method}-0" / "results.json"
        results = json.loads(path.read_text())
        results["metrics"]["test_kept"] = {"accuracy": f1 + 0.25, "f1": f1 + 0.25, "n": 8}
        atomic_write_json(path, results)
    table, _ = write_report([tmp_path], tmp_path, plots=False)
    assert list(table["test F1 kept"]) == ["95.0", "85.0"]
    fake_run(tmp_path / "random", "retrain", 0, 0.9, 1.0)
    assert "test F1 kept" not in write_report([tmp_path / "random"], tmp_path / "random", plots=False)[0]


def md_cells(path) -> dict[str, dict[str, str]]:
    """results.md's table: per method, its cells by column label."""
    lines = [line for line in path.read_text().splitlines() if line.startswith("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return {row[2]: dict(zip(rows[0], row, strict=True)) for row in rows[2:]}


def test_ci95_is_the_half_width_of_the_t_interval_over_seeds(tmp_path) -> None:
    for seed, f1 in enumerate([0.90, 0.94]):
        fake_run(tmp_path, "retrain", seed, f1, 10.0)
    for seed, f1 in enumerate([0.80, 0.82, 0.87]):
        fake_run(tmp_path, "deepcut", seed, f1, 1.0)
    fake_run(tmp_path, "finetune", 0, 0.85, 5.0)
    summary = summarize(load_runs([tmp_path])[0]).set_index("method")
    two = stats.t.ppf(0.975, 1) * np.std([0.90, 0.94], ddof=1) / np.sqrt(2)
    three = stats.t.ppf(0.975, 2) * np.std([0.80, 0.82, 0.87], ddof=1) / np.sqrt(3)
    assert summary.loc["retrain", "test_f1_ci95"] == pytest.approx(two) == pytest.approx(0.254124, abs=1e-6)
    assert summary.loc["deepcut", "test_f1_ci95"] == pytest.approx(three)
    assert np.isnan(summary.loc["finetune", "test_f1_ci95"])  # one seed: no interval
    assert summary.loc["finetune", "test_f1_std"] != summary.loc["finetune", "test_f1_std"]
    assert summary.loc["retrain", "test_f1_n"] == 2 and summary.loc["deepcut", "test_f1_n"] == 3
    write_report([tmp_path], tmp_path, plots=False)
    cells = md_cells(tmp_path / "results.md")
    assert cells["retrain"]["test F1"] == f"92.0 ± {100 * two:.1f}" == "92.0 ± 25.4"
    assert cells["deepcut"]["test F1"] == f"83.0 ± {100 * three:.1f}"
    assert cells["finetune"]["test F1"] == "85.0"  # the mean alone
    assert LEGEND.startswith("± is the half-width of the 95 % t-interval over seeds")
    assert "Welch t-test" in LEGEND and "p < 0.05" in LEGEND
    assert LEGEND in (tmp_path / "results.md").read_text().splitlines()


def _seeds(root, method: str, f1s: list[float], seconds: float) -> None:
    for seed, f1 in enumerate(f1s):
        fake_run(root, method, seed, f1, seconds)


def test_bold_needs_a_significant_win_over_the_runner_up(tmp_path) -> None:
    wide, hair, tie = tmp_path / "wide", tmp_path / "hair", tmp_path / "tie"
    for root in (wide, hair, tie):
        _seeds(root, "original", [0.99, 0.99, 0.98], 0.0)  # yardsticks: never ranked
        _seeds(root, "retrain", [0.97, 0.98, 0.99], 100.0)
    _seeds(wide, "deepcut", [0.93, 0.94, 0.95], 10.0)  # better on every seed, by far
    _seeds(wide, "finetune", [0.80, 0.81, 0.83], 10.0)
    _seeds(wide, "gradient_ascent", [0.70, 0.72, 0.71], 10.0)
    _seeds(hair, "deepcut", [0.90, 0.93, 0.96], 10.0)  # the best mean, by a hair: p = 0.44
    _seeds(hair, "finetune", [0.91, 0.92, 0.95], 10.0)
    _seeds(hair, "gradient_ascent", [0.70, 0.72, 0.71], 10.0)
    _seeds(tie, "deepcut", [0.90, 0.92, 0.94], 10.0)  # tied for the best
    _seeds(tie, "finetune", [0.94, 0.92, 0.90], 10.0)
    _seeds(tie, "gradient_ascent", [0.70, 0.72, 0.71], 10.0)
    for root in (wide, hair, tie):
        write_report([root], root, plots=False)
    cells = md_cells(wide / "results.md")
    assert cells["deepcut"]["test F1"] == "**94.0 ± 2.5**"  # t(0.975, 2) * 1.0 / sqrt(3) = 2.5
    assert cells["finetune"]["test F1"] == "81.3 ± 3.8" and "**" not in cells["gradient_ascent"]["test F1"]
    assert "**" not in cells["original"]["test F1"] and "**" not in cells["retrain"]["test F1"]
    assert "**" not in cells["deepcut"]["unlearn s"]  # the same seconds: a tie
    assert r"\textbf{94.0 $\pm$ 2.5}" in (wide / "results.tex").read_text()
    for root in (hair, tie):
        text = (root / "results.md").read_text()
        assert "**" not in text.split(LEGEND)[0], root.name  # no cell bold
        assert r"\textbf" not in (root / "results.tex").read_text()


def test_single_seed_groups_have_no_bold_and_no_plus_minus(tmp_path) -> None:
    fake_run(tmp_path, "retrain", 0, 0.97, 100.0)
    fake_run(tmp_path, "deepcut", 0, 0.95, 1.0)
    fake_run(tmp_path, "finetune", 0, 0.50, 50.0)  # far worse, but one seed proves nothing
    table, _ = write_report([tmp_path], tmp_path, plots=False)
    assert list(table["test F1"]) == ["97.0", "50.0", "95.0"]  # retrain, finetune, deepcut
    table_text = (tmp_path / "results.md").read_text().split(LEGEND)[0]
    assert "±" not in table_text and "**" not in table_text
    assert r"\textbf" not in (tmp_path / "results.tex").read_text()


def test_forget_quality_figure_is_drawn_only_when_the_runs_have_scores(tmp_path) -> None:
    import dataclasses

    from unlearnbench.evaluation import SECTIONS, section

    def flat(record: dict) -> dict[str, float]:  # the flat columns the report reads
        return {
            "fq_score": record["score"],
            "fq_final_score": record["final_score"],
            "fq_ulira_auc": record["ulira_auc"],
        }

    registered = SECTIONS.get("forget_quality")  # the evaluation's own, once it registers one
    if registered is None:
        section("forget_quality", flatten=flat)(lambda inputs: None)
    else:  # its columns, this record's flat columns
        SECTIONS["forget_quality"] = dataclasses.replace(registered, flatten=flat)
    try:
        for seed in (0, 1, 2):
            for method, fq, f1 in (
                ("original", 0.02, 0.95),
                ("retrain", 0.95, 0.93),
                ("finetune", 0.20, 0.92),
                ("deepcut", 0.60, 0.90),
            ):
                score = fq + seed / 50
                record = {"score": score, "final_score": score * 0.95, "ulira_auc": 1 - score / 2}
                fake_run(
                    tmp_path / "fq", method, seed, f1 + seed / 100, 1.0, sections={"forget_quality": record}
                )
        write_report([tmp_path / "fq"], tmp_path / "fq-report", plots=True)
        summary = pd.read_csv(tmp_path / "fq-report" / "results.csv").set_index("method")
        assert summary.loc["deepcut", "fq_score_mean"] == pytest.approx(0.62)
        assert summary.loc["deepcut", "fq_score_ci95"] == pytest.approx(
            stats.t.ppf(0.975, 2) * 0.02 / np.sqrt(3)
        )
        assert summary.loc["deepcut", "fq_ulira_auc_mean"] == pytest.approx(0.69)
        figure = tmp_path / "fq-report" / "forget_quality_bbc_m.png"
        assert figure.stat().st_size > 10_000
        assert (tmp_path / "fq-report" / "tradeoff_bbc_m.png").exists()

        for seed in (0, 1):  # a forget_quality section without a score: no figure
            for method in ("retrain", "deepcut"):
                record = {"score": None, "final_score": None, "ulira_auc": None}
                fake_run(tmp_path / "none", method, seed, 0.9, 1.0, sections={"forget_quality": record})
        write_report([tmp_path / "none"], tmp_path / "none-report", plots=True)
        assert not list((tmp_path / "none-report").glob("forget_quality_*.png"))
        assert (tmp_path / "none-report" / "tradeoff_bbc_m.png").exists()
    finally:
        if registered is None:
            SECTIONS.pop("forget_quality")
        else:
            SECTIONS["forget_quality"] = registered
    for seed in (0, 1):  # no forget_quality section at all: no figure, no error
        fake_run(tmp_path / "plain", "retrain", seed, 0.9, 1.0)
        fake_run(tmp_path / "plain", "deepcut", seed, 0.8, 1.0)
    write_report([tmp_path / "plain"], tmp_path / "plain-report", plots=True)
    pngs = sorted(p.name for p in (tmp_path / "plain-report").glob("*.png"))
    assert pngs == ["tradeoff_bbc_m.png"]


def test_mean_ci_is_the_t_interval_of_the_finite_values() -> None:
    # t_{0.975, 2} = 4.303, std 1, n 3: half-width 4.303 / sqrt(3) = 2.484
    assert mean_ci([1.0, 2.0, 3.0]) == "2.0 ± 2.5"
    assert mean_ci([0.01, 0.02, 0.03, float("nan")], scale=100.0, digits=2) == "2.00 ± 2.48"
    assert mean_ci([0.5], scale=100.0) == "50.0"  # one value: no interval
    assert mean_ci([]) == "-" and mean_ci([None, float("nan")]) == "-"
