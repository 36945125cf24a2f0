"""The SASRec-style network behind the retrained sequence baseline (Kang & McAuley, 2018, in outline).

Kept apart from `retrained` so that torch is imported only when a sequence model is fitted.
"""

from __future__ import annotations

import torch
from torch import nn


class SASRecNet(nn.Module):
    """Item embeddings plus learned positions through causal pre-norm transformer blocks.

    Rows of `items` double as the output layer (tied embeddings, plus a bias per item that learns
    popularity quickly), so a hidden state scores the whole catalog with one product; row 0 is
    padding. Embeddings start small, so the first logits are near zero and training starts at the
    uniform loss (ln of the catalog size). Sequences are padded on the right, so with the causal
    mask a real position only ever attends to earlier real items.
    """

    def __init__(self, items: int, max_len: int, dim: int, layers: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.scale = dim**0.5
        self.items = nn.Embedding(items + 1, dim, padding_idx=0)
        self.positions = nn.Embedding(max_len, dim)
        self.bias = nn.Parameter(torch.zeros(items))
        for table in (self.items, self.positions):
            nn.init.normal_(table.weight, std=0.02)
        with torch.no_grad():
            self.items.weight[0].zero_()
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=dim, dropout=dropout, batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        causal = torch.triu(torch.ones(max_len, max_len, dtype=torch.bool), diagonal=1)
        self.register_buffer("causal", causal, persistent=False)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores of every catalog item (column r for item row r) for each hidden state."""
        return hidden @ self.items.weight[1:].T + self.bias

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """Hidden states (batch, length, dim) for item ids + 1 (0 = padding)."""
        length = seq.shape[1]
        x = self.items(seq) * self.scale + self.positions.weight[:length]
        x = self.dropout(x) * (seq > 0).unsqueeze(-1)
        return self.norm(self.blocks(x, mask=self.causal[:length, :length], is_causal=True))
