"""Derived features, recomputed from the purchases by `python -m app features`."""

from app.features.build import PRICE_BANDS, FeatureReport, build_features

__all__ = ["PRICE_BANDS", "FeatureReport", "build_features"]
