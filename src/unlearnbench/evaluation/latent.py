"""The ``latent`` section: where the forget samples (and, as a control, the test samples) sit among
the retain set's class clusters in the model's embedding space, after unlearning and before it (the
original), with the cosine distance."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.metrics import silhouette_samples
from sklearn.metrics.pairwise import cosine_distances
from sklearn.preprocessing import normalize

from unlearnbench.evaluation.inputs import EvalInputs
from unlearnbench.evaluation.registry import Option, section
from unlearnbench.runtime.outputs import embedding
from unlearnbench.tasks import Predictions

NAN = float("nan")
QUERIES = ("forget", "test")


def latent_metrics(
    query: np.ndarray,
    query_labels: np.ndarray,
    retain: np.ndarray,
    retain_labels: np.ndarray,
    max_retain: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Where ``query`` samples (D_f, or test as a control) sit among the class clusters of the retain
    set, in one model's embedding space, with the cosine distance d(a, b) = 1 - a.b / (|a| |b|):

    - centroid c_k: the mean of the L2-normalised retain embeddings of class k.
    - ``nearest_own``: share of query samples x (of a class that has retain samples) whose nearest
      centroid is that of their own class y.
    - ``margin``: mean over those of min_{k != y} d(x, c_k) - d(x, c_y); > 0: still closer to its own
      class, < 0: it left it.
    - ``silhouette``: mean over the query samples of s(x) = (b(x) - a(x)) / max(a(x), b(x)),
      ``sklearn.metrics.silhouette_samples(metric="cosine")`` on the union of the retain embeddings
      (at most ``max_retain``, a seeded random sample) and the query, labelled by class: a(x) is the
      mean distance to the other points of its class, b(x) the smallest mean distance to the points
      of another class. In [-1, 1]; > 0 inside its class cluster, < 0 nearer another cluster.
    - ``n``: query samples; ``n_own``: those of a class with retain samples.
    """
    out = {"nearest_own": NAN, "margin": NAN, "silhouette": NAN, "n": len(query), "n_own": 0}
    if len(query) == 0 or len(retain) == 0:
        return out
    q = normalize(np.asarray(query, dtype=np.float64))
    r = normalize(np.asarray(retain, dtype=np.float64))
    classes = np.unique(retain_labels)
    centroids = np.stack([r[retain_labels == c].mean(axis=0) for c in classes])
    dist = cosine_distances(q, centroids)  # (Q, K)
    own = np.isin(query_labels, classes)
    out["n_own"] = int(own.sum())
    if own.any():
        d, y = dist[own], query_labels[own]
        col = np.searchsorted(classes, y)
        rows = np.arange(len(y))
        out["nearest_own"] = float(np.mean(classes[d.argmin(axis=1)] == y))
        if len(classes) > 1:
            others = d.copy()
            others[rows, col] = np.inf
            out["margin"] = float(np.mean(others.min(axis=1) - d[rows, col]))
    if len(r) > max_retain:
        keep = np.sort(np.random.default_rng(seed).choice(len(r), size=max_retain, replace=False))
        r, retain_labels = r[keep], retain_labels[keep]
    points, labels = np.vstack([r, q]), np.r_[retain_labels, query_labels]
    if 2 <= len(np.unique(labels)) <= len(points) - 1:
        s = silhouette_samples(points, labels, metric="cosine")
        out["silhouette"] = float(np.mean(s[len(r) :]))
    return out


def latent_of(outputs: Mapping[str, Predictions], max_retain: int, seed: int) -> dict[str, Any] | None:
    """``latent_metrics`` of forget and (a control: samples never trained on) test against retain."""
    if any(outputs[s].embeddings is None for s in ("forget", "retain", "test")):
        return None
    retain = outputs["retain"]
    return {
        split: latent_metrics(
            outputs[split].embeddings,
            outputs[split].labels,
            retain.embeddings,
            retain.labels,
            max_retain,
            seed,
        )
        for split in QUERIES
    }


def flatten_latent(record: dict[str, Any]) -> dict[str, float]:
    row = {}
    for when in ("before", "after"):
        for split, values in (record.get(when) or {}).items():
            for key in ("nearest_own", "margin", "silhouette"):
                value = values.get(key)
                row[f"latent_{split}_{key}_{when}"] = NAN if value is None else float(value)
    return row


@section(
    "latent",
    splits=("forget", "retain", "test"),
    original=True,
    switch="latent",
    options=(Option("latent_max_retain", 2000),),
    flatten=flatten_latent,
    embeddings=True,
)
def latent(inputs: EvalInputs) -> dict[str, Any]:
    cap, seed = inputs.opts.get("latent_max_retain"), inputs.ctx.seed
    after = latent_of(inputs.after, cap, seed)
    if inputs.is_original:
        before = after
    else:
        before = latent_of({s: inputs.before_on(s) for s in ("forget", "retain", "test")}, cap, seed)
    return {
        "distance": "cosine",
        "embedding": embedding(inputs.ctx.pooling),
        "unit": inputs.task.latent_unit,
        "after": after,
        "before": before,
    }
