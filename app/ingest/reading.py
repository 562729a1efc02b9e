"""Read rows from .csv, .csv.gz and .xlsx files, turning every defect into an IngestError
that names the file, the place in it and the reason."""

import csv
import gzip
import zlib
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path

# Reporting every row would cost more than reading it.
PROGRESS_EVERY = 20_000
MAX_FIELD_CHARS = 10_000

Progress = Callable[[int], None]
"""Called with the number of bytes of the file read so far."""


class IngestError(Exception):
    """A file can't be ingested as it is. Nothing of it was loaded."""

    def __init__(self, path: Path, where: str, reason: str) -> None:
        super().__init__(f"{path}, {where}: {reason}")
        self.path = path
        self.where = where
        self.reason = reason


Record = tuple[str, list[str]]
"""Where the row is ("line 12", "sheet 'X' row 3") and its cells as text."""


def read_records(
    path: Path, encoding: str = "utf-8", progress: Progress | None = None
) -> Iterator[Record]:
    """Yield the header (as the first record) and then every row of the file."""
    if not path.is_file():
        raise IngestError(path, "file", "no such file")
    name = path.name.lower()
    if name.endswith(".xlsx"):
        yield from _xlsx_records(path, progress)
    elif name.endswith((".csv", ".csv.gz")):
        yield from _csv_records(path, encoding, progress)
    else:
        raise IngestError(path, "file", "unsupported file type; expected .csv, .csv.gz or .xlsx")


def _csv_records(path: Path, encoding: str, progress: Progress | None) -> Iterator[Record]:
    csv.field_size_limit(MAX_FIELD_CHARS)
    with path.open("rb") as raw:
        compressed = path.name.lower().endswith(".gz")
        stream: Iterable[bytes] = gzip.GzipFile(fileobj=raw) if compressed else raw
        lines = _decoded_lines(path, stream, encoding)
        reader = csv.reader(lines, strict=True)
        count = 0
        try:
            for row in reader:
                count += 1
                if progress is not None and count % PROGRESS_EVERY == 0:
                    progress(raw.tell())
                if row:
                    yield f"line {reader.line_num}", row
        except csv.Error as exc:
            raise IngestError(path, f"line {reader.line_num}", f"malformed CSV: {exc}") from exc
        if count == 0:
            raise IngestError(path, "line 1", "the file is empty")
        if progress is not None:
            progress(raw.tell())


def _decoded_lines(path: Path, stream: Iterable[bytes], encoding: str) -> Iterator[str]:
    number = 0
    try:
        for number, line in enumerate(stream, start=1):
            try:
                text = line.decode(encoding)
            except UnicodeDecodeError as exc:
                raise IngestError(
                    path,
                    f"line {number}",
                    f"not valid {encoding} (byte 0x{line[exc.start]:02x} at column"
                    f" {exc.start + 1}); convert the file or pass --encoding",
                ) from exc
            yield text.removeprefix("\ufeff") if number == 1 else text
    except EOFError as exc:
        raise IngestError(
            path, f"line {number + 1}", "the compressed file ends early (truncated download?)"
        ) from exc
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise IngestError(path, f"line {number + 1}", f"not a valid gzip file: {exc}") from exc


def _xlsx_records(path: Path, progress: Progress | None) -> Iterator[Record]:
    from openpyxl import load_workbook  # slow to import; only xlsx needs it

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a damaged file
        raise IngestError(path, "file", f"not a readable .xlsx workbook: {exc}") from exc
    size = path.stat().st_size
    header: list[str] | None = None
    try:
        for sheet in book.worksheets:
            # Every sheet must share the first sheet's header (Online Retail II has one per year).
            for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
                where = f"sheet {sheet.title!r} row {number}"
                row = [_cell_text(value) for value in values]
                while row and row[-1] == "":
                    row.pop()
                if not row:
                    continue
                if number == 1 and header is not None:
                    if row != header:
                        raise IngestError(path, where, "this sheet's header differs from the first")
                    continue
                if header is None:
                    header = row
                yield where, row
            if progress is not None:
                progress(size)
    finally:
        book.close()
    if header is None:
        raise IngestError(path, "sheet 1 row 1", "the workbook is empty")


def _cell_text(value: object) -> str:
    """Cells come typed from Excel; the cleaning rules read text, as from a CSV."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
