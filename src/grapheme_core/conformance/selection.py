"""Choosing checks by id the way ``pytest -k`` chooses tests.

A pattern is an expression of words joined by ``and``, ``or``, ``not`` and parentheses
(``"grad and not fd"``). A word matches a check id when it is a case-insensitive substring
of it (``clip`` matches ``grad.clip`` and ``grad.clip_factor``) or, if it contains ``*``,
``?`` or ``[``, when it matches the id as a glob (``grad.*``).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable

_TOKEN = re.compile(r"\s*(\(|\)|[^\s()]+)")
_KEYWORDS = ("and", "or", "not")


def word_matches(word: str, check_id: str) -> bool:
    """Whether one word (a substring or a glob) matches ``check_id``."""
    if any(c in word for c in "*?["):
        return fnmatch.fnmatchcase(check_id.lower(), word.lower())
    return word.lower() in check_id.lower()


def compile_pattern(pattern: str) -> Callable[[str], bool]:
    """A predicate on check ids for ``pattern``; ``ValueError`` for a malformed expression."""
    tokens = _TOKEN.findall(pattern)
    if not tokens:
        raise ValueError("an empty check pattern matches nothing; give an id or a word")
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise ValueError(f"check pattern {pattern!r} ends too early")
        pos += 1
        return tokens[pos - 1]

    def expr() -> Callable[[str], bool]:
        left = term()
        while peek() == "or":
            take()
            a, b = left, term()
            left = lambda i, a=a, b=b: a(i) or b(i)  # noqa: E731
        return left

    def term() -> Callable[[str], bool]:
        left = factor()
        while peek() == "and":
            take()
            a, b = left, factor()
            left = lambda i, a=a, b=b: a(i) and b(i)  # noqa: E731
        return left

    def factor() -> Callable[[str], bool]:
        tok = take()
        if tok == "not":
            inner = factor()
            return lambda i: not inner(i)
        if tok == "(":
            inner = expr()
            if take() != ")":
                raise ValueError(f"check pattern {pattern!r}: missing ')'")
            return inner
        if tok in _KEYWORDS or tok == ")":
            raise ValueError(f"check pattern {pattern!r}: unexpected {tok!r}")
        return lambda i, w=tok: word_matches(w, i)

    predicate = expr()
    if pos != len(tokens):
        raise ValueError(f"check pattern {pattern!r}: unexpected {tokens[pos]!r}")
    return predicate
