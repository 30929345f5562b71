"""``unlearnbench-save-tuned SEARCH_DIR --set NAME``: the best parameters of a finished search
(``unlearnbench -m hparams_search=<method> ...``) as a tuned set that one override applies.

It writes ``<conf>/tuned_params/NAME/<method>.yaml`` (the method's keys that the search chose) and
``<conf>/tuned/NAME.yaml`` (the option that selects the set). With ``tuned=NAME`` every method that
has a file in the set runs on its values, in a single run or any sweep; the others keep their
defaults. Searches of several methods saved under one NAME form one set. docs/tuning.md.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from unlearnbench.cli.callbacks import OPTUNA_RESULTS
from unlearnbench.config import CONF_DIR
from unlearnbench.errors import UnlearnbenchError
from unlearnbench.io import atomic_write_text

SET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
METHOD_PREFIX = "method."


@dataclass(frozen=True)
class Search:
    """What a search dir says about itself: the Optuna sweeper's results and its trials' configs."""

    sweep_dir: Path
    method: str
    best_params: dict[str, Any]
    best_value: float
    n_trials: int
    objective: str
    seed: int
    experiment: str


def read_search(sweep_dir: str | Path) -> Search:
    sweep_dir = Path(sweep_dir)
    results_file = sweep_dir / OPTUNA_RESULTS
    if not results_file.exists():
        raise UnlearnbenchError(f"{results_file} does not exist: not the dir of a finished search")
    best = OmegaConf.to_container(OmegaConf.load(results_file))
    if not isinstance(best, dict) or "best_params" not in best:
        raise UnlearnbenchError(f"{results_file} holds no best_params (a multi-objective search?)")
    configs = [OmegaConf.load(p) for p in sorted(sweep_dir.glob("*/.hydra/config.yaml"))]
    methods = sorted({str(c.method.name) for c in configs})
    if len(methods) != 1:
        raise UnlearnbenchError(f"{sweep_dir}: the trials ran {methods or 'no method'}; a search tunes one")
    first = configs[0]
    return Search(
        sweep_dir=sweep_dir,
        method=methods[0],
        best_params=dict(best["best_params"]),
        best_value=float(best["best_value"]),
        n_trials=len(configs),
        objective=str(first.get("optimized_metric")),
        seed=int(first.seed),
        experiment=str(first.get("experiment_name")),
    )


def method_values(best_params: dict[str, Any]) -> dict[str, Any]:
    """``{"method.lr": 1e-5, "method.stop.every_n_steps": 5}`` as the nested keys of the method's node."""
    out: dict[str, Any] = {}
    for key, value in best_params.items():
        if not key.startswith(METHOD_PREFIX):
            # the set is applied to the method's node, where a data or train key has no place
            raise UnlearnbenchError(
                f"the search tuned {key}, not a method.* key: a tuned set holds method keys only"
            )
        *parents, leaf = key.removeprefix(METHOD_PREFIX).split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def tuned_yaml(search: Search) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = [
        f"# {search.method}'s parameters from an Optuna search (unlearnbench-save-tuned, {when}):",
        f"#   search dir {search.sweep_dir}",
        f"#   experiment {search.experiment}, tuning seed {search.seed}, {search.n_trials} trials,",
        f"#   objective {search.objective}, best value {search.best_value:.6g}",
        "# Applied to the method's node by tuned=<this set> (conf/config.yaml); docs/tuning.md.",
    ]
    body = OmegaConf.to_yaml(OmegaConf.create(method_values(search.best_params)))
    return "\n".join(header) + "\n" + body


def selector_yaml(set_name: str, methods: list[str]) -> str:
    return "\n".join(
        [
            "# @package _global_",
            f"# tuned={set_name}: each method below runs on conf/tuned_params/{set_name}/<method>.yaml,",
            "# every other method on its defaults. Written by unlearnbench-save-tuned; docs/tuning.md.",
            f"# methods: {', '.join(methods)}",
            "",
        ]
    )


def save_tuned(sweep_dir: str | Path, set_name: str, conf_dir: str | Path = CONF_DIR) -> list[Path]:
    """Write the search's best parameters into the tuned set ``set_name``; the files written."""
    if not SET_NAME.fullmatch(set_name) or set_name == "none":
        raise UnlearnbenchError(f"--set {set_name!r}: letters, digits, _ and - only, and not 'none'")
    search = read_search(sweep_dir)
    conf_dir = Path(conf_dir)
    params_file = conf_dir / "tuned_params" / set_name / f"{search.method}.yaml"
    params_file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(params_file, tuned_yaml(search))
    methods = sorted(p.stem for p in params_file.parent.glob("*.yaml"))
    selector = conf_dir / "tuned" / f"{set_name}.yaml"
    selector.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(selector, selector_yaml(set_name, methods))
    return [params_file, selector]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="unlearnbench-save-tuned", description=__doc__.split("\n\n")[0])
    parser.add_argument("search_dir", help="the sweep dir of a finished hparams_search run")
    parser.add_argument("--set", dest="set_name", required=True, help="the tuned set's name (tuned=NAME)")
    parser.add_argument(
        "--conf-dir",
        default=CONF_DIR,
        help="where conf/tuned and conf/tuned_params go (default: the package's conf dir; another dir "
        "is found with hydra.searchpath=[file://DIR])",
    )
    args = parser.parse_args(argv)
    try:
        written = save_tuned(args.search_dir, args.set_name, args.conf_dir)
    except UnlearnbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    for path in written:
        print(f"wrote {path}")
    print(f"apply with: tuned={args.set_name}")


if __name__ == "__main__":
    main()
