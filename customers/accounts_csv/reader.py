"""Streaming CSV reading: UTF-8 with or without a BOM, ``,`` or ``;`` delimiters, line numbers kept.

The file is read in small buffered chunks and never held whole, so a million-row file costs the same memory
as a hundred-row one. The bytes read and their SHA-256 are tracked on the way through, for progress lines
and for checking that a confirmed import is the file that was previewed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
from collections.abc import Iterator
from typing import BinaryIO

DELIMITERS = (",", ";")
READ_BUFFER_BYTES = 1 << 20


class UnreadableFile(Exception):
    """The file cannot be read as CSV text at all (as opposed to rows that fail validation)."""


class _CountingReader(io.RawIOBase):
    """A raw stream over any object with ``read(n)`` that counts and hashes the bytes passing through."""

    def __init__(self, source: BinaryIO) -> None:
        super().__init__()
        self._source = source
        self.bytes_read = 0
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._source.read(len(buffer))
        if not isinstance(data, bytes):
            raise UnreadableFile("the file was opened as text; open it in binary mode")
        size = len(data)
        buffer[:size] = data
        self.bytes_read += size
        self.sha256.update(data)
        return size


class CsvSource:
    """Records of a CSV byte stream as ``(line, cells)``, ``line`` being where the record starts (1-based)."""

    def __init__(self, source: BinaryIO) -> None:
        self._counter = _CountingReader(source)
        buffered = io.BufferedReader(self._counter, buffer_size=READ_BUFFER_BYTES)
        # utf-8-sig drops the byte order mark Excel writes; newline="" is what the csv module expects.
        self._text = io.TextIOWrapper(buffered, encoding="utf-8-sig", newline="")
        self.delimiter = ","

    @property
    def bytes_read(self) -> int:
        return self._counter.bytes_read

    @property
    def sha256(self) -> str:
        return self._counter.sha256.hexdigest()

    def records(self) -> Iterator[tuple[int, list[str]]]:
        """Every non-blank record, the header included. Raises :class:`UnreadableFile`."""
        line = 0
        try:
            first = self._text.readline()
            self.delimiter = max(DELIMITERS, key=first.count) if first else ","
            reader = csv.reader(itertools.chain([first], self._text), delimiter=self.delimiter)
            for cells in reader:
                start, line = line + 1, reader.line_num
                if cells:
                    yield start, cells
        except UnicodeDecodeError as error:
            raise UnreadableFile(
                f"line {line + 1}: the file is not UTF-8 text ({error.reason}). "
                'Save it as "CSV UTF-8"; an Excel workbook (.xlsx) cannot be imported directly.'
            ) from error
        except csv.Error as error:
            raise UnreadableFile(f"line {line + 1}: the file is not valid CSV ({error}).") from error
        except OSError as error:
            raise UnreadableFile(f"the file could not be read: {error}") from error
