"""Command-line option parsing shared by the ``grapheme-train`` subcommands."""

from __future__ import annotations

import json
from typing import Any

import click


def backend_options(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, Any]:
    """Click callback for a repeatable ``--option KEY=VALUE``: the keyword arguments for
    ``get_backend``. Values that read as JSON (numbers, booleans, quoted strings) are
    converted; anything else stays a string. A malformed item is a usage error (exit 2)."""
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--option")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out
