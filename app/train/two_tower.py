"""The two-tower scorer (pure nn.Modules, no I/O).

score(shopper, item) = (<user vector, item vector> + repeat bonus) / temperature

- Item tower: ID embedding + projected frozen MiniLM title vector + theme + price band. The ID
  part is dropped at random in training, so an item known only by its title still gets a
  useful vector (cold start).
- User tower: causal self-attention over the last N items (item vectors + position + time gap
  to now; for a model that reads them, the last views, clicks and add-to-carts too, each token
  with its event type), read out at a final query token, then joined with the mean vector of
  every item bought before (long-run taste), country and recency/frequency.
  With no history it still answers from the query token, country and recency.
- Repeat bonus: this shop's customers reorder a lot, so each item the shopper bought before gets
  a learned bonus from how many baskets held it, how long ago, the item and the shopper.
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from app.train.data import EVENT_TYPES
from app.train.inputs import (
    BASKET_BUCKETS,
    COUNT_BUCKETS,
    GAP_BUCKETS,
    SHARE_BUCKETS,
    SequenceSpec,
)


@dataclass(frozen=True)
class TwoTowerConfig:
    n_items: int
    n_themes: int
    n_price_bands: int
    n_countries: int
    text_dim: int = 384
    dim: int = 128
    layers: int = 2
    heads: int = 2
    dropout: float = 0.2
    id_dropout: float = 0.15
    temperature: float = 0.07
    # Non-purchase events of each type in the sequence (SequenceSpec); 0: purchases only.
    events_per_type: int = 0

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


class ItemTower(nn.Module):
    def __init__(self, config: TwoTowerConfig) -> None:
        super().__init__()
        self.config = config
        self.ids = nn.Embedding(config.n_items, config.dim)
        self.text = nn.Linear(config.text_dim, config.dim)
        self.theme = nn.Embedding(config.n_themes, config.dim)
        self.price_band = nn.Embedding(config.n_price_bands, config.dim)
        self.mix = nn.Sequential(nn.GELU(), nn.Linear(config.dim, config.dim))
        nn.init.normal_(self.ids.weight, std=0.02)

    def forward(
        self, ids: Tensor, text: Tensor, theme: Tensor, price_band: Tensor, known: Tensor
    ) -> Tensor:
        """Vectors for items; `known` is False for items without a trained ID embedding."""
        id_part = self.ids(ids.clamp(max=self.config.n_items - 1)) * known.unsqueeze(-1)
        if self.training and self.config.id_dropout > 0:
            keep = torch.rand(ids.shape, device=ids.device) >= self.config.id_dropout
            id_part = id_part * keep.unsqueeze(-1)
        summed = id_part + self.text(text) + self.theme(theme) + self.price_band(price_band)
        vectors: Tensor = summed + self.mix(summed)
        return vectors


class UserTower(nn.Module):
    def __init__(self, config: TwoTowerConfig) -> None:
        super().__init__()
        d = config.dim
        length = SequenceSpec(config.events_per_type).length
        self.position = nn.Embedding(length + 1, d)
        self.gap = nn.Embedding(GAP_BUCKETS, d)
        self.query = nn.Parameter(torch.randn(d) * 0.02)
        # Dropout on the input tokens only: inside the layers it costs more (CPU random
        # numbers) than it helps on this data.
        layer = nn.TransformerEncoderLayer(
            d, config.heads, 2 * d, 0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.country = nn.Embedding(config.n_countries, d)
        self.baskets = nn.Embedding(BASKET_BUCKETS, d)
        self.since_last = nn.Embedding(GAP_BUCKETS, d)
        self.profile = nn.Linear(d, d)
        self.out = nn.Sequential(nn.Linear(5 * d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.dropout = nn.Dropout(config.dropout)
        self.heads = config.heads
        # Only a model that reads other events has this table: older bundles load unchanged.
        self.event = nn.Embedding(len(EVENT_TYPES), d) if config.events_per_type else None

    def forward(
        self,
        item_vectors: Tensor,  # (B, L, d) vectors of the history items
        padding: Tensor,  # (B, L) True where there is no item
        gap: Tensor,  # (B, L)
        event: Tensor,  # (B, L) EVENT_TYPES index
        past_items: Tensor,  # (B, R, d) vectors of the distinct items bought before, 0 = none
        country: Tensor,
        baskets: Tensor,
        since_last: Tensor,
    ) -> Tensor:
        query = (self.query + self.since_last(since_last)).unsqueeze(1)
        history = item_vectors + self.gap(gap)
        if self.event is not None:
            history = history + self.event(event)
        tokens = torch.cat([history, query], dim=1)
        tokens = self.dropout(tokens + self.position.weight.unsqueeze(0))
        hidden = self.encoder(tokens, mask=self.attention_mask(padding))
        read = self.norm(hidden[:, -1])
        # Long-run taste over everything bought, beyond the last N items (padding rows are 0).
        bought = (past_items.abs().sum(-1, keepdim=True) > 0).float()
        profile = (past_items * bought).sum(1) / bought.sum(1).clamp(min=1.0)
        context = [
            self.profile(profile), self.country(country), self.baskets(baskets),
            self.since_last(since_last),
        ]  # fmt: skip
        users: Tensor = self.out(torch.cat([read, *context], dim=-1))
        return users

    def attention_mask(self, padding: Tensor) -> Tensor:
        """(B * heads, L + 1, L + 1), True = may not attend: the future and padded items. Every
        position may attend to itself, so no row is fully masked (that gives NaN in some
        attention kernels); real positions never see padded ones."""
        length = padding.shape[1] + 1
        ones = torch.ones(length, length, dtype=torch.bool, device=padding.device)
        padded_keys = torch.cat([padding, padding.new_zeros(padding.shape[0], 1)], dim=1)
        blocked = torch.triu(ones, 1).unsqueeze(0) | padded_keys.unsqueeze(1)
        blocked = blocked & ~torch.eye(length, dtype=torch.bool, device=padding.device)
        return blocked.repeat_interleave(self.heads, dim=0)


class RepeatScorer(nn.Module):
    """The bonus for items the shopper bought before, from how many of their baskets held the
    item (count and share), how long ago it was last bought, the item and the shopper."""

    def __init__(self, config: TwoTowerConfig) -> None:
        super().__init__()
        width = 16
        self.count = nn.Embedding(COUNT_BUCKETS, width)
        self.recency = nn.Embedding(GAP_BUCKETS, width)
        self.share = nn.Embedding(SHARE_BUCKETS, width)
        self.item = nn.Linear(config.dim, width)
        self.user = nn.Linear(config.dim, width)
        self.mlp = nn.Sequential(nn.GELU(), nn.Linear(width, 32), nn.GELU(), nn.Linear(32, 1))

    def forward(
        self,
        count: Tensor,
        recency: Tensor,
        share: Tensor,
        item_vectors: Tensor,
        items: Tensor,
        user: Tensor,
    ) -> Tensor:
        """(B, R) bonus for the R past items `items` (indices into item_vectors)."""
        # Project all items once, then gather: far cheaper than projecting B x R copies.
        item_part = self.item(item_vectors)[items]
        features = self.count(count) + self.recency(recency) + self.share(share) + item_part
        bonus: Tensor = self.mlp(features + self.user(user).unsqueeze(1)).squeeze(-1)
        return bonus


class TwoTower(nn.Module):
    def __init__(self, config: TwoTowerConfig) -> None:
        super().__init__()
        self.config = config
        self.items = ItemTower(config)
        self.users = UserTower(config)
        self.repeat = RepeatScorer(config)

    def item_vectors(
        self, text: Tensor, theme: Tensor, price_band: Tensor, known: Tensor
    ) -> Tensor:
        """(n + 1, d) unit vectors for the n items described, plus a zero padding row."""
        ids = torch.arange(text.shape[0], device=text.device)
        vectors = F.normalize(self.items(ids, text, theme, price_band, known), dim=-1)
        return torch.cat([vectors, vectors.new_zeros(1, vectors.shape[1])])

    def user_vectors(self, item_vectors: Tensor, shopper: Mapping[str, Tensor]) -> Tensor:
        """(B, d) unit vectors for shoppers given as ShopperInputs tensors; item_vectors is
        (n_items + 1, d): every item's vector plus the padding row."""
        sequence = shopper["sequence"]
        padding = sequence == self.config.n_items
        users = self.users(
            item_vectors[sequence], padding, shopper["sequence_gap"], shopper["sequence_event"],
            item_vectors[shopper["repeat_items"]], shopper["country"], shopper["baskets"],
            shopper["since_last"],
        )  # fmt: skip
        return F.normalize(users, dim=-1)

    def scores(self, item_vectors: Tensor, shopper: Mapping[str, Tensor]) -> Tensor:
        """(B, rows of item_vectors) logits of every item (and the padding row) for each shopper."""
        users = self.user_vectors(item_vectors, shopper)
        bonus = self.repeat_bonus(
            item_vectors, users, shopper["repeat_items"], shopper["repeat_count"],
            shopper["repeat_recency"], shopper["repeat_share"],
        )  # fmt: skip
        logits: Tensor = (users @ item_vectors.T + bonus) / self.config.temperature
        return logits

    def repeat_bonus(
        self,
        item_vectors: Tensor,
        users: Tensor,
        repeat_items: Tensor,
        repeat_count: Tensor,
        repeat_recency: Tensor,
        repeat_share: Tensor,
    ) -> Tensor:
        """Dense (B, rows of item_vectors) bonus: zero for items the shopper never bought.
        Serving may pass rows after the padding row (items added since training)."""
        bonus: Tensor = self.repeat(
            repeat_count, repeat_recency, repeat_share, item_vectors, repeat_items, users
        )
        bonus = bonus.masked_fill(repeat_items == self.config.n_items, 0.0)
        dense = bonus.new_zeros(users.shape[0], item_vectors.shape[0])
        return dense.scatter_add(1, repeat_items, bonus)
