"""Reasons: evidence for a recommendation and the writers that put it in words."""
