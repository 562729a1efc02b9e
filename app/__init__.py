"""reasonrec: recommendations with short, personal, true reasons."""

__version__ = "0.1.0"
