"""The one exception a user sees when a data file or record cannot be used."""

from __future__ import annotations

from reftlab.errors import ReftlabError


class DataError(ReftlabError, ValueError):
    """A data file, folder or record that cannot be turned into ``Example`` records.

    The message always names the thing to fix: the file (or Hub id) and, for a bad record,
    the line number (JSONL, 1-based) or list index (JSON list, 0-based).
    """


class RecordError(DataError):
    """One record is malformed; raised by the record mappers, which do not know where the
    record came from. The loaders catch it and raise a ``DataError`` naming file and place."""
