"""The benchmark (unlearnbench.bench, ``unlearnbench-bench``) does not rot: its sweep counting (e)
and eval-agreement check (d) on a tiny config; and the ``trainer.compile`` option (off by default)
composes and is wired."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY
from unlearnbench.bench import common, counting, document, evaluation, retrain
from unlearnbench.cli import bench as bench_cli
from unlearnbench.errors import ConfigError
from unlearnbench.pipeline import run_experiment
from unlearnbench.runtime.fit import build_trainer


@pytest.mark.slow  # a benchmark section end to end
def test_sweep_trains_each_model_once(tmp_path):
    """M methods x R ratios x S seeds: S originals and R x S retrained models, each trained once,
    and their outputs computed once (then read from their cache entries)."""
    base = [*TINY, "data.max_samples=120", "eval.latent=false", "eval.predictions=false"]
    out = counting.count_sweep(
        ["finetune", "gradient_ascent"], [0.05, 0.1], [0], tmp_path / "cache", base, tmp_path
    )
    assert out["ok"], out
    assert out["original_trainings"] == 1 and out["retrain_trainings"] == 2
    assert out["reference_output_passes"] == 2  # one per retrained model, not one per run


@pytest.mark.slow  # a benchmark section end to end
def test_unlearn_vs_retrain_rows_and_progress(tmp_path):
    """(b): one row per (dataset, ratio, method), its time a fraction of the retraining measured in
    the same process, and the rows so far handed out after each ratio (a stopped run keeps them)."""
    seen = []
    rows = retrain.unlearn_vs_retrain(
        {"tiny": ["data.max_samples=120"]},
        ["gradient_ascent"],
        [0.05, 0.1],
        [0],
        tmp_path / "cache",
        [*TINY, *common.NO_ANALYSES],
        progress=lambda so_far: seen.append(len(so_far)),
    )
    assert seen == [1, 2]
    assert [(r["ratio"], r["method"]) for r in rows] == [(0.05, "gradient_ascent"), (0.1, "gradient_ascent")]
    for r in rows:
        assert r["retrain_seconds"] > 0 and r["seconds"] > 0
        assert r["ratio_to_retrain"] == pytest.approx(r["seconds"] / r["retrain_seconds"], rel=1e-6)
    assert rows[1]["n_forget"] > rows[0]["n_forget"]


def test_eval_fast_path_agrees_with_plain_padding(tmp_path):
    cfg = common.compose_cfg([*TINY, "data.max_samples=120", "data.max_length=48"], tmp_path)
    out = evaluation.eval_throughput(cfg, "train", repeats=1)
    assert out["same_predictions"] and out["logits_allclose"] and out["same_metrics"], out


def test_compile_option_composes_off_by_default(make_cfg, tmp_path):
    assert make_cfg().trainer.compile is False
    trainer = build_trainer(
        {"accelerator": "cpu", "compile": True}, None, tmp_path, max_epochs=1, max_steps=1
    )
    assert trainer.max_steps == 1  # not passed on to lightning.Trainer
    with pytest.raises(ConfigError, match=r"trainer\.compile"):
        build_trainer({"compile": "yes"}, None, tmp_path, max_epochs=1, max_steps=1)


def test_compile_true_compiles_the_fitted_model_for_its_fits_only(make_cfg, tmp_path, monkeypatch):
    """trainer.compile=true runs the fitted model's training steps compiled (nn.Module.compile, in
    place) and the evaluation after a fit eagerly. The compiled path is faked here (a real compilation
    takes minutes on CPU and needs a C compiler), the way nn.Module.compile installs it."""
    compiled_calls: list[tuple[str, bool]] = []

    def fake_compile(self, *args, **kwargs):
        eager = self._call_impl

        def compiled(*a, **k):
            compiled_calls.append((type(self).__name__, torch.is_grad_enabled()))
            return eager(*a, **k)

        self._compiled_call_impl = compiled

    monkeypatch.setattr(torch.nn.Module, "compile", fake_compile)
    cfg = make_cfg("method=finetune", "trainer.compile=true", "eval.reference=false", "data.max_samples=120")
    res = run_experiment(cfg, tmp_path / "run")
    assert "forget" in res["metrics"] and res["cost"]["steps"] > 0
    assert len(compiled_calls) >= res["cost"]["steps"]  # the original's steps and FineTune's
    assert all(name.endswith("ForSequenceClassification") for name, _ in compiled_calls)
    assert all(grad for _, grad in compiled_calls), "an evaluation pass ran through the compiled model"


def _figures(command: str, cpu: str = "cpu-x", **sections) -> dict:
    return {
        "mode": "full",
        "command": command,
        "finished": "2026-11-28 09:00",
        "machine": {"cpu": cpu, "cores": 2, "gpu": None, "torch_threads": 1, "python": "3.11"},
        "versions": {"python": "3.11", "torch": "2.13"},
        "seconds": {"total": 12.0},
        "f": {"benchmark_process_peak_rss_mb": 100.0, "ru_maxrss_mb": 90.0, "gpu_peak_allocated_mb": None},
        **sections,
    }


def test_render_merges_the_runs_of_one_machine_into_one_document(tmp_path):
    """Long sections run in separate processes (--json each) and are written as one document by
    --render: every section, each source's command and its own peak memory; hand-written text kept."""
    check = {
        "n_forget": 5,
        "n_val": 50,
        "cap": 8,
        "repeats": 3,
        "seconds_whole_val": 2.0,
        "seconds_capped": 0.5,
    }
    first = _figures("python scripts/benchmark.py --only s", s={**check, "ratio": 0.25})
    second = _figures("python scripts/benchmark.py --only s --seeds 0", s={**check, "ratio": 0.5})
    second["f"]["benchmark_process_peak_rss_mb"] = 200.0
    paths = []
    for i, fig in enumerate((first, second)):
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps(fig))
    out = tmp_path / "perf.md"
    out.write_text(f"# Mine\n\nhand-written\n\n{document.BEGIN}\nold\n{document.END}\nafter\n")
    bench_cli.main(["--render", *map(str, paths), "--out", str(out)])
    text = out.read_text()
    assert "hand-written" in text and text.endswith("after\n") and "old" not in text
    assert "`python scripts/benchmark.py --only s`" in text and "--seeds 0`" in text
    assert "**0.50x** the time" in text  # the later run's section wins
    assert "100 MB" in text and "200 MB" in text  # each process's own peak
    (tmp_path / "2.json").write_text(json.dumps(_figures("x", cpu="other")))
    with pytest.raises(SystemExit, match="one machine"):
        bench_cli.main(["--render", str(paths[0]), str(tmp_path / "2.json"), "--out", str(out)])


def test_bare_loop_syncs_only_at_the_edges_of_the_timed_window(monkeypatch):
    """GPU throughput is timed with a sync at the window's edges only (a sync per step would expose
    host overhead that overlaps the GPU's work in a real run); None keeps a sync per step."""

    class Linear(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(3, 2)

        def forward(self, input_ids, attention_mask, labels):
            logits = self.layer(input_ids.float() * attention_mask)
            return type("Out", (), {"loss": torch.nn.functional.cross_entropy(logits, labels)})

    rows = [{"input_ids": torch.ones(3), "attention_mask": torch.ones(3), "labels": torch.tensor(1)}] * 4
    loader = torch.utils.data.DataLoader(rows, batch_size=2)
    synced = []
    monkeypatch.setattr(common, "_sync", lambda: synced.append(1))
    model = Linear()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    times, samples = common.bare_loop(model, loader, optimizer, steps=5, sync_at={2, 5})
    assert (len(times), samples, len(synced)) == (6, 10, 2)  # 5 steps over 2 epochs of 2 batches
    synced.clear()
    common.bare_loop(model, loader, optimizer, steps=5)
    assert len(synced) == 5
    clock, synced[:] = common.StepClock(sync_at={1, 3}), []
    for _ in range(4):
        clock.on_train_batch_end()
    assert (len(clock.ends), len(synced)) == (4, 2)


def test_scratch_space_holds_every_temp_dir_and_is_removed():
    """A run's temp dirs (run dirs, the default model cache: gigabytes in full mode) go at its end."""
    with common.scratch_space():
        run_dir = Path(tempfile.mkdtemp(prefix="bench-b-"))
        (run_dir / "model.safetensors").write_bytes(b"0" * 10)
        assert run_dir.exists()
    assert not run_dir.exists() and not run_dir.parent.exists()
    assert tempfile.gettempdir() != str(run_dir.parent)


def test_the_documented_command_leaves_out_where_a_run_writes():
    argv = [
        "--mode",
        "full",
        "--only",
        "b",
        "--cache",
        "/tmp/c",
        "--json=/tmp/f.json",
        "--seeds",
        "0",
        "--out",
        "x",
    ]
    assert document.what_runs(argv) == ["--mode", "full", "--only", "b", "--seeds", "0"]
