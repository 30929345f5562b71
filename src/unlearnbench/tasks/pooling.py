"""Sequence representations: one vector per text from a layer's token states.

``cls`` reads the first token (what an encoder's classifier reads), ``last`` the last token the
attention mask keeps (what a decoder-only classifier reads: the only position that has seen the
whole text), ``mean`` the masked mean. ``auto`` is resolved per model family before it gets here
(:func:`unlearnbench.models.resolve_pooling`).
"""

from __future__ import annotations

import torch

POOLINGS = ("cls", "mean", "last")  # what :func:`pool` takes
CHOICES = ("auto", *POOLINGS)  # what a config may say


def last_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """The index of the rightmost kept token of each row, whichever side the padding is on.

    The same rule as transformers' decoder classifiers (the rightmost token that is not padding),
    read off the mask instead of the ids so that it holds for any pad id; a row with no kept token
    gives 0."""
    width = attention_mask.shape[-1]
    positions = torch.arange(width, device=attention_mask.device)
    return (positions * (attention_mask != 0).to(positions.dtype)).argmax(dim=-1)


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """r(x) from one layer's token states ``hidden`` (B, T, d): the first token, the last kept
    token, or the masked mean."""
    attention_mask = attention_mask.to(hidden.device)
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "last":
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        return hidden[rows, last_positions(attention_mask)]
    if pooling == "mean":
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
    raise ValueError(f"pooling={pooling!r}: one of {POOLINGS}")
