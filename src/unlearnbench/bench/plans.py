"""What each ``--mode`` measures: per section, the overrides, sizes, seeds and repeats of its runs
(``quick``: minutes on a CPU; ``full``: hours; ``gpu``: what only a GPU can tell), and the one
DeepCUT run that ``--profile-run`` times for a profiler."""

from __future__ import annotations

from typing import Any

from unlearnbench.bench.common import QUIET

MODES: dict[str, dict[str, Any]] = {
    # quick: < 5 minutes on 2 CPU cores; subsets and short sequences, so the figures are indicative.
    "quick": {
        "a": {
            "overrides": ["data.max_samples=400", "data.max_length=32", "train.batch_size=16"],
            "steps": 8,
            "repeats": 3,
        },
        "a_tiny": {
            "overrides": [
                "model=tiny_bert",
                "data.max_samples=400",
                "data.max_length=64",
                "train.batch_size=16",
            ],
            "steps": 20,
            "repeats": 5,
        },
        "b": {  # the real train.* recipe (2 epochs): retraining's cost is what the ratio divides by
            "datasets": {
                "bbc": ["data=bbc", "data.max_samples=200", "data.max_length=32"],
                "tweets": ["data=tweets", "data.max_samples=200", "data.max_length=32"],
            },
            "methods": ["gradient_ascent", "deepcut"],  # finetune and the rest: full mode
            "ratios": [0.01, 0.05, 0.1],
            "seeds": [0],
            "base": [],
        },
        "c": {
            "base": ["data=tweets", "data.max_length=32", "train.epochs=1", "method.stop.rule=none"],
            "sizes": [300, 600, 1200],
            "forgets": [8, 16, 32],
            "fixed_forget": 16,
            "fixed_size": 600,
            "repeats": 1,
        },
        "d": {"overrides": ["data=tweets", "data.max_samples=600"], "split": "train", "repeats": 3},
        "s": {"overrides": ["data=tweets", "data.max_length=32"], "cap": 128, "repeats": 3},
        "e": {"methods": ["finetune", "gradient_ascent", "deepcut"], "ratios": [0.05, 0.1], "seeds": [0, 1]},
    },
    # full: MiniLM on full bbc (2,225) and tweets (5,000 default subsample), all methods, 3 seeds.
    "full": {
        "a": {"overrides": [], "steps": 50, "repeats": 5},
        "a_tiny": {"overrides": ["model=tiny_bert"], "steps": 50, "repeats": 5},
        "b": {
            "datasets": {"bbc": ["data=bbc"], "tweets": ["data=tweets"]},
            "methods": [
                "finetune",
                "gradient_ascent",
                "gradient_difference",
                "random_label",
                "scrub",
                "npo",
                "sisa",
                "deepcut",
            ],
            "ratios": [0.01, 0.05, 0.1],
            "seeds": [0, 1, 2],
            "base": [],
        },
        "c": {
            "base": ["data=tweets", "method.stop.rule=none"],
            "sizes": [2500, 5000, 10000, 20000],
            "forgets": [25, 50, 100, 200],
            "fixed_forget": 50,
            "fixed_size": 5000,
            "repeats": 3,
        },
        "d": {"overrides": ["data=tweets"], "split": "train", "repeats": 5},
        "s": {"overrides": ["data=tweets", "data.max_samples=null"], "cap": 256, "repeats": 5},
        "e": {"methods": ["finetune", "gradient_ascent", "deepcut"], "ratios": [0.05, 0.1], "seeds": [0, 1]},
    },
    # gpu: what only a GPU can tell (bf16, compile) and the CPU figures again on it; minutes on one GPU.
    "gpu": {
        "g": {
            "shapes": {  # name: (overrides, arms); compiling is slow, so only the defaults get it
                "bbc defaults": (
                    ["data=bbc"],
                    [("32-true", False), ("bf16-mixed", False), ("32-true", True), ("bf16-mixed", True)],
                ),
                "bbc long": (
                    ["data=bbc", "data.max_length=256", "train.batch_size=64"],
                    [("32-true", False), ("bf16-mixed", False)],
                ),
            },
            "steps": 60,
            "warmup": 10,
            "repeats": 2,
        },
        "b": {
            "datasets": {
                "bbc 32-true": ["data=bbc", "trainer.precision=32-true"],
                "bbc bf16-mixed": ["data=bbc", "trainer.precision=bf16-mixed"],
            },
            "methods": ["finetune", "gradient_ascent", "deepcut"],
            "ratios": [0.05],
            "seeds": [0],
            "base": [],
        },
        "d": {"overrides": ["data=tweets"], "split": "train", "repeats": 3},
    },
}


PROFILE_RUN = [  # (3): one DeepCUT run; py-spy record -- python scripts/benchmark.py --profile-run
    *QUIET,
    "data=bbc",
    "data.max_samples=600",
    "data.max_length=64",
    "train.epochs=1",
    "method=deepcut",
    "forget.ratio=0.1",
    "eval.reference=false",
]
