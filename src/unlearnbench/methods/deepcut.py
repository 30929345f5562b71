"""``deepcut``: Deep Contrastive Unlearning for fine-Tuning (He et al. 2025, arXiv 2503.14900).

The loss functions are plain functions so that they can be tested and reused without Lightning.
Where the paper is silent, the project fixes a specification (docs/deepcut.md); every open choice
is a knob in ``conf/method/deepcut.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from unlearnbench.errors import ConfigError
from unlearnbench.methods.base import register
from unlearnbench.methods.paired import PairedLossMethod, PairedParams
from unlearnbench.models import resolve_pooling
from unlearnbench.tasks import POOLING_CHOICES, Units, pool

DENOMINATORS = ("all", "negatives")
NEGATIVE_SOURCES = ("auto", "retain", "retain_and_forget")
TOKEN_ANCHORS = ("entity", "all")


def contrastive_forget_terms(
    anchor_z: torch.Tensor,
    anchor_y: torch.Tensor,
    retain_z: torch.Tensor,
    retain_y: torch.Tensor,
    tau: float = 0.1,
    denominator: str = "all",
    extra_negative_z: torch.Tensor | None = None,
    extra_negative_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, int]:
    """:func:`contrastive_forget_loss` and the number of anchors it skipped (no positive or no negative).

    ``extra_negative_z`` (M, d) with ``extra_negative_mask`` (A, M) adds negatives beyond the retain
    views (e.g. other forget samples of the anchor's class, when the retain set lacks that class).
    """
    if denominator not in DENOMINATORS:
        raise ValueError(f"denominator={denominator!r}: one of {DENOMINATORS}")
    sim = anchor_z @ retain_z.T / tau  # (A, R)
    positive = anchor_y[:, None] != retain_y[None, :]  # other class: pull towards
    negative = ~positive  # own class: push away from
    if extra_negative_z is not None and extra_negative_mask is not None:
        sim = torch.cat([sim, anchor_z @ extra_negative_z.T / tau], dim=1)
        positive = torch.cat([positive, torch.zeros_like(extra_negative_mask)], dim=1)
        negative = torch.cat([negative, extra_negative_mask], dim=1)
    valid = positive.any(dim=1) & negative.any(dim=1)
    skipped = int((~valid).sum())
    if not bool(valid.any()):
        return sim.sum() * 0.0, skipped  # zero loss, zero (not NaN) gradient
    sim, positive, negative = sim[valid], positive[valid], negative[valid]
    in_denominator = negative if denominator == "negatives" else positive | negative  # neither: not counted
    log_denominator = torch.logsumexp(sim.masked_fill(~in_denominator, float("-inf")), dim=1, keepdim=True)
    log_prob = (sim - log_denominator).masked_fill(~positive, 0.0)
    per_anchor = -log_prob.sum(dim=1) / positive.sum(dim=1)
    return per_anchor.mean(), skipped


def contrastive_forget_loss(
    anchor_z: torch.Tensor,
    anchor_y: torch.Tensor,
    retain_z: torch.Tensor,
    retain_y: torch.Tensor,
    tau: float = 0.1,
    denominator: str = "all",
) -> torch.Tensor:
    """DeepCUT's forgetting loss L_f over forget anchors and retain views.

    For anchor a with label y_a, P(a) = retain views of another label (pulled towards),
    N(a) = retain views of label y_a (pushed away), s(a, k) = z_a . z_k:

        l(a) = -1/|P(a)| sum_{p in P(a)} log( exp(s(a,p)/tau) / sum_{k in D(a)} exp(s(a,k)/tau) )

    with D(a) = P(a) U N(a) (``denominator="all"``, SupCon-style) or N(a) (``"negatives"``).
    L_f is the mean of l(a) over anchors with non-empty P(a) and N(a); with none, 0 with a zero
    gradient. ``anchor_z`` (A, d) and ``retain_z`` (R, d) must be L2-normalised.
    """
    return contrastive_forget_terms(anchor_z, anchor_y, retain_z, retain_y, tau, denominator)[0]


def supervised_contrastive_loss(z: torch.Tensor, y: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """SupCon (Khosla et al. 2020) among retain views: each view is pulled to the others of its label.

    l(i) = -1/|S(i)| sum_{p in S(i)} log( exp(z_i.z_p/tau) / sum_{k != i} exp(z_i.z_k/tau) ),
    S(i) = views j != i with y_j = y_i; the mean over views with non-empty S(i).
    """
    n = z.shape[0]
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    sim = (z @ z.T / tau).masked_fill(self_mask, float("-inf"))
    same = (y[:, None] == y[None, :]) & ~self_mask
    valid = same.any(dim=1)
    if not bool(valid.any()):
        return z.sum() * 0.0
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    per_view = -log_prob.masked_fill(~same, 0.0).sum(dim=1) / same.sum(dim=1).clamp(min=1)
    return per_view[valid].mean()


@dataclass(kw_only=True)
class DeepCutParams(PairedParams):
    views: int
    gamma: float
    tau: float
    denominator: str
    pooling: str
    layers: list[int] = field(default_factory=lambda: [-1])
    projection_dim: int | None = None
    lambda_keep: float = 0.0
    detach_retain: bool = True
    negatives_from: str = "auto"
    token_anchors: str = "entity"  # token classification: anchors are entity-tagged words, or all words

    def validate(self, prefix: str) -> None:
        super().validate(prefix)
        if self.views < 1:
            raise ConfigError("method.views", self.views, "a positive number of dropout views (V)")
        if self.tau <= 0:
            raise ConfigError("method.tau", self.tau, "a positive temperature")
        if self.gamma < 0 or self.lambda_keep < 0:
            raise ConfigError(
                "method.gamma / method.lambda_keep", (self.gamma, self.lambda_keep), "weights >= 0"
            )
        if self.denominator not in DENOMINATORS:
            raise ConfigError("method.denominator", self.denominator, f"one of {', '.join(DENOMINATORS)}")
        if self.pooling not in POOLING_CHOICES:
            raise ConfigError("method.pooling", self.pooling, f"one of {', '.join(POOLING_CHOICES)}")
        if not self.layers:
            raise ConfigError("method.layers", self.layers, "a non-empty list of encoder layer indices")
        if self.negatives_from not in NEGATIVE_SOURCES:
            raise ConfigError(
                "method.negatives_from", self.negatives_from, f"one of {', '.join(NEGATIVE_SOURCES)}"
            )
        if self.retain_batch_size < 1:
            raise ConfigError("method.retain_batch_size", self.retain_batch_size, "a positive integer")
        if self.token_anchors not in TOKEN_ANCHORS:
            raise ConfigError(
                "method.token_anchors", self.token_anchors, f"one of {', '.join(TOKEN_ANCHORS)}"
            )


@register("deepcut")
class DeepCut(PairedLossMethod):
    """DeepCUT: reshape the latent space so that forget samples leave their class cluster.

    Token classification (NER), as docs/deepcut.md specifies: each labelled token of a forget sentence is an
    anchor, retain tokens of another tag are its positives and those of the same tag its
    negatives; a token is a word at its first subword, z = normalize(proj(h_l[word])). Which words
    are anchors is ``token_anchors``: ``entity`` (default; a tag other than O: O marks the absence
    of an entity, so an O word holds nothing to forget) or ``all`` (O words too). L_CE is the
    token cross-entropy on the retain sentences.

        L = L_CE(D_r views) + gamma * L_f + lambda_keep * L_keep

    Each step encodes B_f and a class-stratified B_r V times with dropout on; L_f
    (:func:`contrastive_forget_loss`) treats every forget view as an anchor, pulled to retain views
    of other classes and pushed from those of its own, on z = normalize(proj(pool(h_l))) for each
    selected layer l (the "deep" variant averages L_f over layers); L_CE keeps the classifier on
    the retain views; L_keep (:func:`supervised_contrastive_loss`) optionally keeps retain clusters tight.
    """

    Params = DeepCutParams

    def __init__(self, model, params: DeepCutParams, data) -> None:
        super().__init__(model, params, data)
        hidden = int(model.config.hidden_size)
        self.num_layers = int(model.config.num_hidden_layers)
        for layer in params.layers:
            if not -(self.num_layers + 1) <= layer <= self.num_layers:
                raise ConfigError(
                    "method.layers",
                    params.layers,
                    f"indices into {self.num_layers + 1} hidden states (0 = embeddings)",
                )
        self.projection: nn.Module = nn.Identity()
        if params.projection_dim:
            self.projection = nn.Sequential(
                nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, int(params.projection_dim))
            )
        self.skipped_anchors = 0
        self.anchors_seen = 0
        self.outside_tag: int | None = None
        # auto: the state the model's own classifier reads (first token of an encoder, last of a decoder)
        self.pooling = resolve_pooling(params.pooling, model.config)

    @classmethod
    def check_data(cls, params: DeepCutParams, data) -> None:
        if params.negatives_from != "retain":
            return
        lacking = sorted(data.held_classes("forget") - data.held_classes("retain"))
        if lacking:
            names = [data.label_names[c] for c in lacking]
            raise ConfigError(
                "method.negatives_from",
                "retain",
                f"the retain set has no samples of forget class(es) {names}, so no anchor has a negative; "
                "use method.negatives_from=retain_and_forget (negatives from the other forget samples)",
            )

    def train_loader(self, seed: int):
        # The label that marks "no entity" (the O tag) holds nothing to forget: no anchor under
        # token_anchors=entity. Tasks without one (sequence classification) anchor every sample.
        self.outside_tag = self.task.outside_label(self.data.records)
        return super().train_loader(seed)

    def units(self, batch: dict[str, torch.Tensor], views: int) -> tuple[Units, torch.Tensor]:
        """What is contrasted over the V stacked views (the task's units: samples, or the words of
        every sentence at their first subword) and which of them are anchors."""
        u = self.task.units(batch, views)
        anchor = u.forget
        if self.params.token_anchors == "entity" and self.outside_tag is not None:
            anchor = anchor & (u.labels != self.outside_tag)
        return u, anchor

    def unit_z(self, hidden: torch.Tensor, mask: torch.Tensor, units: Units) -> torch.Tensor:
        """z = normalize(proj(r)), r the unit's state: the pooled sequence, or the word's token."""
        pooling = self.pooling
        states = self.task.unit_states(hidden, mask, units, lambda h, m: pool(h, m, pooling))
        return F.normalize(self.projection(states), dim=-1)

    def loss_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The three terms of the loss on one paired batch (V views stacked along the batch)."""
        p, views = self.params, self.params.views
        mask = batch["attention_mask"].repeat(views, 1)
        need_states = p.gamma > 0 or p.lambda_keep > 0
        out = self.model(
            input_ids=batch["input_ids"].repeat(views, 1),
            attention_mask=mask,
            output_hidden_states=need_states,
        )
        is_forget = batch["is_forget"].repeat(views)
        labels = batch["labels"].repeat(views, *([1] * (batch["labels"].dim() - 1)))
        zero = out.logits.sum() * 0.0
        terms = {"ce": self.task.masked_ce(out.logits, labels, ~is_forget)}
        terms["forget"], terms["keep"] = zero, zero
        u, anchor = self.units(batch, views)
        retain, y = ~u.forget, u.labels
        extra_mask = None
        if p.negatives_from != "retain":  # negatives among the other forget samples of the anchor's class
            f_labels, f_sample = y[anchor], u.sample[anchor]
            extra_mask = (f_labels[:, None] == f_labels[None, :]) & (f_sample[:, None] != f_sample[None, :])
            if p.negatives_from == "auto":  # only for anchors whose class has no retain view in the batch
                has_retain_negative = (f_labels[:, None] == y[retain][None, :]).any(dim=1)
                extra_mask &= ~has_retain_negative[:, None]
        if p.gamma > 0:
            per_layer = []
            for layer in p.layers:
                z = self.unit_z(out.hidden_states[layer], mask, u)
                # Detached, L_f moves the anchors only; attached, it also drags the retain views
                # (and so whole clusters) towards the anchors.
                retain_z = z[retain].detach() if p.detach_retain else z[retain]
                extra_z = None
                if extra_mask is not None:
                    extra_z = z[anchor].detach() if p.detach_retain else z[anchor]
                loss, skipped = contrastive_forget_terms(
                    z[anchor], y[anchor], retain_z, y[retain], p.tau, p.denominator, extra_z, extra_mask
                )
                per_layer.append(loss)
                self.skipped_anchors += skipped
                self.anchors_seen += int(anchor.sum())
            terms["forget"] = torch.stack(per_layer).mean()
        if p.lambda_keep > 0:
            z = self.unit_z(out.hidden_states[p.layers[0]], mask, u)
            terms["keep"] = supervised_contrastive_loss(z[retain], y[retain], p.tau)
        return terms

    def combine(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        return terms["ce"] + self.params.gamma * terms["forget"] + self.params.lambda_keep * terms["keep"]

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        self.log("train/skipped_anchors", float(self.skipped_anchors), batch_size=len(batch["labels"]))
        return loss

    def info(self) -> dict:
        return {
            **super().info(),
            "skipped_anchors": self.skipped_anchors,
            "anchors": self.anchors_seen,
            "pooling": self.pooling,
        }
