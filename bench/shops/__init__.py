"""Generated shops of other shapes than the UCI gift shop, for tests and benchmarks."""

from bench.shops.second import PRICE_STYLES, ShopSummary, generate, write_csv

__all__ = ["PRICE_STYLES", "ShopSummary", "generate", "write_csv"]
