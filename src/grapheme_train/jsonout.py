"""The ``--json`` output of every ``grapheme-train`` command: one versioned object.

Each command prints one JSON object whose first key is ``"format"`` (:data:`FORMAT`), so a
script can tell which layout it reads; the number moves only when a key is removed or
changes meaning (adding keys keeps it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["FORMAT", "dumps"]

FORMAT = 1
"""The layout version of the JSON objects the commands print."""


def dumps(payload: Mapping[str, Any], indent: int | None = 2) -> str:
    """``payload`` as JSON text, with ``"format": FORMAT`` first."""
    return json.dumps({"format": FORMAT, **payload}, indent=indent)
