"""The lines of a UTF-8 text file, read so that a bad or absurd file ends in one clear error.

Bytes are decoded one line at a time, so a byte that is not UTF-8 is reported with its line and
its offset in the whole file (a text-mode read reports the offset inside its read buffer). A line
longer than `MAX_LINE_BYTES` is never held in memory: it is skipped and reported as `None`, so
one 50 MB record cannot reach the tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from reftlab.data.errors import DataError

# A math word problem with its worked solution is a few kB; a 1 MiB line is not a record.
MAX_LINE_BYTES = 1 << 20
_CHUNK = 1 << 16


def _skip_rest_of_line(stream: BinaryIO) -> int:
    """Read past the end of the current line; the number of bytes skipped."""
    skipped = 0
    while True:
        chunk = stream.readline(_CHUNK)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped


def read_lines(
    path: Path, max_bytes: int | None = MAX_LINE_BYTES
) -> Iterator[tuple[int, str | None]]:
    """(1-based line number, text) of each line of `path`; text is None for a line over
    `max_bytes` bytes (None: no cap). Raise `DataError` naming the line and the file's byte
    offset at the first byte that is not UTF-8."""
    offset = 0
    limit = -1 if max_bytes is None else max_bytes + 1
    with path.open("rb") as stream:
        number = 0
        while raw := stream.readline(limit):
            number, start = number + 1, offset
            offset += len(raw)
            if len(raw) == limit and not raw.endswith(b"\n"):
                offset += _skip_rest_of_line(stream)
                yield number, None
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"{path}, line {number}: not UTF-8 text ({exc.reason} at byte "
                    f"{start + exc.start} of the file); is it a binary file?"
                ) from None
            yield number, text
