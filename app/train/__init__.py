"""Training and evaluation: data snapshot, temporal split, metrics, models, peers."""
