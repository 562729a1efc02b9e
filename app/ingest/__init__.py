"""Ingest order and event files into Postgres: read, clean, bulk-load."""

from app.ingest.load import FileReport, analyze, database_has_events, ingest_file
from app.ingest.reading import IngestError

__all__ = ["FileReport", "IngestError", "analyze", "database_has_events", "ingest_file"]
