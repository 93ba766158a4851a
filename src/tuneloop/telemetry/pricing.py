"""Cost of model calls from a price table (USD per 1,000 tokens)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class Price(Protocol):
    """A model's price per 1,000 input and output tokens."""

    @property
    def input_per_1k(self) -> float: ...  # noqa: D102

    @property
    def output_per_1k(self) -> float: ...  # noqa: D102


class PriceTable:
    """Looks up a model's price by exact name, then by the longest known prefix.

    Prefix matching lets ``gpt-4o-2024-08-06`` use the ``gpt-4o`` price.
    """

    def __init__(self, prices: Mapping[str, Price]) -> None:
        self._prices = dict(prices)
        self._by_length = sorted(self._prices, key=len, reverse=True)
        self._cache: dict[str, Price | None] = {}

    def price(self, model: str) -> Price | None:
        """The price of ``model``, or None when the table does not know it."""
        if model in self._cache:
            return self._cache[model]
        found = self._prices.get(model)
        if found is None:
            lowered = model.lower()
            # Provider-qualified names ("openai/gpt-4o") price like the bare name.
            bare = lowered.rsplit("/", 1)[-1]
            for known in self._by_length:
                if bare.startswith(known.lower()):
                    found = self._prices[known]
                    break
        if len(self._cache) < 10_000:
            self._cache[model] = found
        return found

    def cost(self, model: str | None, input_tokens: int, output_tokens: int) -> float:
        """Cost in USD of one call; 0 for an unknown model."""
        if not model:
            return 0.0
        price = self.price(model)
        if price is None:
            return 0.0
        return (input_tokens * price.input_per_1k + output_tokens * price.output_per_1k) / 1000
