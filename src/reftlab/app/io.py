"""What the verbs share at the command line: the help flag, `output=FILE`, and the one JSON line
of results that `reftlab score` and `reftlab eval` print."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

# The argument of `reftlab score` and `reftlab eval` that names their per-item file.
OUTPUT_ARG = "output"


def asks_for_help(argv: Sequence[str]) -> bool:
    return any(arg in ("-h", "--help") for arg in argv)


def print_json_line(summary: dict) -> None:
    """The verb's result: one JSON line on stdout."""
    print(json.dumps(summary))
    sys.stdout.flush()
