"""The metrics, each a function of per-sample outputs (:class:`Predictions`), computed with
scikit-learn and scipy: classification scores, the comparison with a reference model, membership
inference, and where samples sit in the latent space.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score, silhouette_samples
from sklearn.metrics.pairwise import cosine_distances
from sklearn.preprocessing import normalize

from unlearnbench.evaluation.predictions import Predictions

NAN = float("nan")
ATTACKS = ("loss", "entropy", "modified_entropy")


# ---------------------------------------------------------------------- classification
def classification_metrics(labels: np.ndarray, preds: np.ndarray) -> dict[str, float]:
    """Accuracy, macro-F1 and micro-F1 of one split; ``f1`` (the task's main F1) is macro-F1.

    Macro-F1 averages over the classes present in the split's labels: a prediction of another
    class counts against the true class (a false negative) but adds no class of its own, so a
    single-class forget set (whole-class forgetting) scores 2 acc / (1 + acc), not 1/k of that
    for each of k stray classes predicted.
    """
    if len(labels) == 0:
        return {"accuracy": NAN, "f1": NAN, "f1_macro": NAN, "f1_micro": NAN, "n": 0}
    present = np.unique(labels)
    macro = float(f1_score(labels, preds, labels=present, average="macro", zero_division=0))
    return {
        "accuracy": float(accuracy_score(labels, preds)),
        "f1": macro,
        "f1_macro": macro,
        "f1_micro": float(f1_score(labels, preds, average="micro", zero_division=0)),
        "n": len(labels),
    }


def tag_sequences(pred: Predictions, label_names: Sequence[str]) -> tuple[list[list[str]], list[list[str]]]:
    """Gold and predicted tag names of each sentence (rows grouped by dataset index, in word order)."""
    names = np.asarray(list(label_names), dtype=object)
    order = np.lexsort((pred.positions, pred.indices))
    idx, gold, guess = pred.indices[order], names[pred.labels[order]], names[pred.preds[order]]
    cuts = np.flatnonzero(np.diff(idx)) + 1
    return [g.tolist() for g in np.split(gold, cuts)], [p.tolist() for p in np.split(guess, cuts)]


def token_metrics(pred: Predictions, label_names: Sequence[str]) -> dict[str, float]:
    """Entity-level scores of a token-classification split (seqeval, CoNLL-style BIO chunks: an
    entity counts only when its type and its span are both right), plus word accuracy.

    ``f1`` = ``f1_micro``: micro-averaged entity F1 (the main NER score); ``f1_macro``: the mean of
    the per-type entity F1 over the types present in the gold tags; ``precision`` / ``recall``:
    micro entity scores; ``accuracy``: share of words with the right tag (O included); ``n``:
    sentences; ``n_words``; ``n_entities``: gold entities. F1 is 0 when there is no gold entity
    and none predicted (seqeval's zero_division).
    """
    from seqeval.metrics import accuracy_score as seq_accuracy
    from seqeval.metrics import f1_score as seq_f1
    from seqeval.metrics import precision_score, recall_score
    from seqeval.metrics.sequence_labeling import get_entities

    if len(pred) == 0:
        keys = ("accuracy", "f1", "f1_macro", "f1_micro", "precision", "recall")
        return {**dict.fromkeys(keys, NAN), "n": 0, "n_words": 0, "n_entities": 0}
    gold, guess = tag_sequences(pred, label_names)
    types = sorted({kind for kind, _, _ in get_entities(gold)})
    micro = float(seq_f1(gold, guess, average="micro", zero_division=0))
    if types:
        per_type = seq_f1(gold, guess, average=None, zero_division=0)
        predicted_types = sorted({kind for kind, _, _ in get_entities(gold + guess)})
        by_type = dict(zip(predicted_types, np.atleast_1d(per_type), strict=True))
        macro = float(np.mean([by_type[t] for t in types]))
    else:
        macro = 0.0
    return {
        "accuracy": float(seq_accuracy(gold, guess)),
        "f1": micro,
        "f1_macro": macro,
        "f1_micro": micro,
        "precision": float(precision_score(gold, guess, average="micro", zero_division=0)),
        "recall": float(recall_score(gold, guess, average="micro", zero_division=0)),
        "n": len(gold),
        "n_words": len(pred),
        "n_entities": len(get_entities(gold)),
    }


def split_metrics(pred: Predictions, label_names: Sequence[str] | None = None) -> dict[str, float]:
    """The scores of one split: :func:`classification_metrics`, or :func:`token_metrics` for words."""
    if pred.is_tokens:
        if label_names is None:
            raise ValueError("token predictions need the tag names for entity-level scores")
        return token_metrics(pred, label_names)
    return classification_metrics(pred.labels, pred.preds)


# ---------------------------------------------------------------------- reference comparison
def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per-row Jensen-Shannon divergence of two distributions, in bits (in [0, 1]):
    JS(p, q) = 1/2 KL(p || m) + 1/2 KL(q || m), m = (p + q) / 2 (scipy's distance, squared)."""
    if len(p) == 0:
        return np.zeros(0)
    return jensenshannon(p, q, base=2, axis=1) ** 2


def compare_predictions(
    model: Predictions, reference: Predictions, label_names: Sequence[str] | None = None
) -> dict[str, float]:
    """``model`` against ``reference`` on the same samples (matched by dataset index):

    - ``f1_gap``: |F1(model) - F1(reference)|, the task's main F1 against the true labels (macro-F1;
      entity micro-F1 for token classification, whose rows are words: ``label_names`` needed)
    - ``accuracy_gap``: |acc(model) - acc(reference)|
    - ``agreement``: share of samples (words) on which both predict the same class
    - ``js_divergence``: mean over samples (words) of JS(p_model(.|x), p_reference(.|x)), bits
    """
    if len(model) == 0:
        return {"f1_gap": NAN, "accuracy_gap": NAN, "agreement": NAN, "js_divergence": NAN, "n": 0}
    ref = reference.take(np.unique(model.indices) if model.is_tokens else model.indices)
    model = model.sorted() if model.is_tokens else model
    mine, theirs = split_metrics(model, label_names), split_metrics(ref, label_names)
    return {
        "f1_gap": abs(mine["f1"] - theirs["f1"]),
        "accuracy_gap": abs(mine["accuracy"] - theirs["accuracy"]),
        "agreement": float(accuracy_score(ref.preds, model.preds)),
        "js_divergence": float(js_divergence(model.probs, ref.probs).mean()),
        "n": model.n_samples,
    }


# ---------------------------------------------------------------------- membership inference
def modified_entropy(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Song & Mittal 2021 ("Systematic evaluation of privacy risks of ML models", USENIX Security):
    Mentr(p, y) = -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i). Low for a confident, correct
    prediction (a member), high for a confident, wrong one; unlike entropy it uses the label."""
    if len(probs) == 0:
        return np.zeros(0)
    rows = np.arange(len(labels))
    p_y = probs[rows, labels]
    own = -(1.0 - p_y) * np.log(np.clip(p_y, 1e-300, None))
    others = -probs * np.log1p(-np.clip(probs, 0.0, 1.0 - 1e-12))
    others[rows, labels] = 0.0
    return own + others.sum(axis=1)


def membership_scores(pred: Predictions) -> dict[str, np.ndarray]:
    """Per-sample attack scores, higher = more likely a training member:
    ``loss``: -CE(y, p); ``entropy``: -H(p) (nats); ``modified_entropy``: -Mentr(p, y).
    Token classification: a sentence's score is the mean of its words' (membership is a sentence's)."""
    probs = pred.probs if len(pred) else np.zeros((0, 1))
    scores = {
        "loss": -pred.losses,
        "entropy": -entropy(probs, axis=1) if len(pred) else np.zeros(0),
        "modified_entropy": -modified_entropy(probs, pred.labels),
    }
    if pred.is_tokens and len(pred):
        _, group = np.unique(pred.indices, return_inverse=True)
        counts = np.bincount(group)
        scores = {k: np.bincount(group, weights=v) / counts for k, v in scores.items()}
    return scores


def mia_aucs(members: Predictions, nonmembers: Predictions) -> dict[str, float]:
    """ROC AUC of each threshold attack separating ``members`` (label 1) from ``nonmembers`` (0):
    0.5 = indistinguishable, 1 = every member scores above every non-member, < 0.5 = the reverse."""
    if len(members) == 0 or len(nonmembers) == 0:
        return dict.fromkeys(ATTACKS, NAN)
    m, n = membership_scores(members), membership_scores(nonmembers)
    y = np.r_[np.ones(members.n_samples), np.zeros(nonmembers.n_samples)]
    return {a: float(roc_auc_score(y, np.r_[m[a], n[a]])) for a in ATTACKS}


# ---------------------------------------------------------------------- latent space
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
