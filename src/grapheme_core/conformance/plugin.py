"""pytest plugin: ``--grapheme-backend NAME[,NAME]`` selects the backends under test."""

from __future__ import annotations


def pytest_addoption(parser) -> None:
    group = parser.getgroup("grapheme")
    group.addoption(
        "--grapheme-backend",
        action="store",
        default=None,
        help="comma-separated backend names for the grapheme conformance suite",
    )
