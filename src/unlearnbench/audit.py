"""What a deletion leaves on record: the model card of an exported model (what was removed, how,
when, the headline numbers) and the audit of a deletion request (ids requested, found and not
found; method and parameters; before / after scores; the membership attacks; the retrained
reference and forget quality where they were computed; cost; versions; sha256 of every input and
of the output model), as json and as markdown a data-protection officer can keep."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

AUDIT_VERSION = 1


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(path: str | Path, skip: Iterable[str] = ("README.md",)) -> str:
    """One digest of a directory: its files' relative names and contents, in order (the model card
    left out, since it states the digest of the weights it sits beside)."""
    root, digest = Path(path), hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file() and p.name not in set(skip)):
        digest.update(str(file.relative_to(root)).encode() + b"\0" + sha256_file(file).encode() + b"\0")
    return digest.hexdigest()


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * float(value):.1f}"


def headline(results: Mapping[str, Any]) -> dict[str, Any]:
    """The few numbers a model card and an audit lead with."""
    metrics, before = results.get("metrics") or {}, results.get("before") or {}
    out = {
        "forget_f1_before": (before.get("forget") or {}).get("f1"),
        "forget_f1_after": (metrics.get("forget") or {}).get("f1"),
        "test_f1_before": (before.get("test") or {}).get("f1"),
        "test_f1_after": (metrics.get("test") or {}).get("f1"),
        "mia_loss_auc": (((results.get("mia") or {}).get("attacks") or {}).get("loss") or {}).get("auc"),
        "unlearn_seconds": (results.get("timing") or {}).get("unlearn_seconds"),
    }
    reference = results.get("reference")
    if reference:
        out["forget_f1_retrained"] = (reference.get("retrain_metrics") or {}).get("forget", {}).get("f1")
        out["forget_f1_gap_to_retrained"] = (reference.get("forget") or {}).get("f1_gap")
    quality = results.get("forget_quality")
    if quality:
        out["forget_quality"] = quality.get("score")
    return out


def _before_after(h: Mapping[str, Any]) -> list[str]:
    """The before / after table of the headline scores and the membership AUC under it."""
    return [
        "| | before | after |",
        "|---|---:|---:|",
        f"| F1 on the removed samples | {_pct(h['forget_f1_before'])} | {_pct(h['forget_f1_after'])} |",
        f"| F1 on test | {_pct(h['test_f1_before'])} | {_pct(h['test_f1_after'])} |",
        "",
        f"- loss-attack membership AUC, removed samples vs test (0.5: indistinguishable): "
        f"{h['mia_loss_auc']}",
    ]


def model_card(results: Mapping[str, Any], title: str = "Unlearned model") -> str:
    """README.md of an exported model: what it is, what was removed and how, and the numbers."""
    run, sizes, h = results["run"], results.get("sizes") or {}, headline(results)
    forget = run.get("forget") or {}
    lines = [
        f"# {title}",
        "",
        f"A {run.get('dataset')} classifier ({run.get('model')}) from which {sizes.get('forget')} training "
        f"samples were removed with the unlearning method `{run.get('method')}`, written by unlearnbench on "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}.",
        "",
        "## What was removed",
        "",
        f"- forget set: `{forget.get('tag') or forget.get('strategy')}` ({sizes.get('forget')} of "
        f"{sizes.get('train')} training samples; their ids are in the audit / forget_ids.json of the run)",
        f"- method: `{run.get('method')}` with the parameters in the audit (`method_params`)",
        "",
        "## Headline numbers (scores in percent)",
        "",
        *_before_after(h),
    ]
    if "forget_f1_retrained" in h:
        lines.append(
            f"- a model retrained without them scores {_pct(h['forget_f1_retrained'])} F1 on them; the gap: "
            f"{_pct(h['forget_f1_gap_to_retrained'])} points"
        )
    if "forget_quality" in h:
        lines.append(
            f"- forget quality against retrained models (1: indistinguishable): {h['forget_quality']}"
        )
    lines += [
        "",
        "Load it with plain transformers (`AutoTokenizer`, `AutoModelFor...Classification`, `pipeline`).",
    ]
    return "\n".join(lines) + "\n"


def build_audit(
    results: Mapping[str, Any],
    requests: list[dict[str, Any]],
    inputs: Mapping[str, Any],
    output_model: str | None,
    reference: str,
) -> dict[str, Any]:
    """The audit record of a deletion (json-ready)."""
    requested = sum(r["requested"] for r in requests)
    found = sum(r["found"] for r in requests)
    return {
        "audit_version": AUDIT_VERSION,
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "requests": requests,
        "ids": {
            "requested": requested,
            "found": found,
            "not_found": [i for r in requests for i in r["not_in_data"] + r["not_training_samples"]],
        },
        "method": (results.get("run") or {}).get("method"),
        "method_params": results.get("method_params"),
        "headline": headline(results),
        "before": results.get("before"),
        "after": {s: (results.get("metrics") or {}).get(s) for s in ("forget", "test")},
        "membership_attacks": results.get("mia"),
        "reference": results.get("reference") if reference == "retrain" else None,
        "forget_quality": results.get("forget_quality"),
        "sequential": results.get("sequential"),
        "cost": results.get("cost"),
        "timing": results.get("timing"),
        "versions": results.get("versions"),
        "sha256": {**inputs, "output_model": output_model},
    }


def audit_markdown(audit: Mapping[str, Any]) -> str:
    ids, h = audit["ids"], audit["headline"]
    lines = [
        "# Deletion audit",
        "",
        f"Written {audit['written']} by unlearnbench (audit format {audit['audit_version']}).",
        "",
        "## Request",
        "",
        f"- ids requested: {ids['requested']}, found among the training samples and removed: {ids['found']}, "
        f"not found: {len(ids['not_found'])}"
        + (f" ({', '.join(map(str, ids['not_found'][:20]))})" if ids["not_found"] else ""),
    ]
    for r in audit["requests"]:
        lines.append(f"- `{r['file']}`: {r['requested']} requested, {r['found']} found")
    lines += [
        "",
        "## How",
        "",
        f"- method: `{audit['method']}`; parameters: `{audit['method_params']}`",
        "",
        "## Before / after (percent)",
        "",
        *_before_after(h),
    ]
    if audit.get("reference"):
        lines.append(
            f"- retrained reference: F1 {_pct(h.get('forget_f1_retrained'))} on the removed samples, gap "
            f"{_pct(h.get('forget_f1_gap_to_retrained'))} points"
        )
    if audit.get("forget_quality"):
        lines.append(f"- forget quality against retrained models: {audit['forget_quality'].get('score')}")
    sequence = audit.get("sequential")
    if sequence:
        lines += [
            "",
            "## Requests one after another",
            "",
            "| request | removed so far | F1 on them | test F1 | gap to retrained | cumulative s |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for r in sequence["requests"]:
            if r.get("skipped"):
                continue
            gap = (r.get("reference") or {}).get("f1_gap")
            cells = [r["request"], r["n_forgotten"], _pct(r["forget"]["f1"]), _pct(r["test"]["f1"])]
            cells += [_pct(gap), f"{r['cost']['cumulative_seconds']:.1f}"]
            lines.append("| " + " | ".join(map(str, cells)) + " |")
    lines += ["", "## Integrity (sha256)", ""]
    lines += [f"- {name}: `{value}`" for name, value in audit["sha256"].items()]
    cost = audit.get("cost") or {}
    lines += ["", f"Unlearning took {cost.get('seconds', 0):.1f} s ({cost.get('steps')} steps).", ""]
    return "\n".join(lines)
