"""pytest plugin (``pytest11`` entry point ``grapheme_conformance``).

Options::

    --grapheme-backend NAME[,NAME]        backends the conformance suite runs against
    --grapheme-expected-failures FILE     check ids expected to fail (strict xfail)

``pytest --pyargs grapheme_core.conformance --grapheme-backend NAME`` collects
``grapheme_core/conformance/test_conformance.py``, parametrized by backend and check id
(test ids look like ``test_conformance[numpy-grad.fd]``). Without ``--grapheme-backend``
it runs against every installed backend: the ones that cannot work here (a missing
optional library) are visible skips naming what to install, a broken or incompatible
plugin fails its ``backend.load`` check. The option can also be set with the environment
variable ``GRAPHEME_CONFORMANCE_BACKENDS``.

This module is imported by every pytest run in an environment where grapheme is installed,
so it only adds options; the suite itself lives in the test module.
"""

from __future__ import annotations

import os

BACKEND_OPTION = "--grapheme-backend"
EXPECTED_OPTION = "--grapheme-expected-failures"
ENV_BACKENDS = "GRAPHEME_CONFORMANCE_BACKENDS"


def pytest_addoption(parser) -> None:
    group = parser.getgroup("grapheme", "grapheme backend conformance suite")
    group.addoption(
        BACKEND_OPTION,
        action="append",
        default=None,
        metavar="NAME[,NAME]",
        help="backend(s) the grapheme conformance suite runs against (comma-separated or "
        "repeated; default: every installed backend). Run it with "
        "`pytest --pyargs grapheme_core.conformance --grapheme-backend NAME`.",
    )
    group.addoption(
        EXPECTED_OPTION,
        action="store",
        default=None,
        metavar="FILE",
        help="file of conformance check ids expected to fail, one per line, '#' comments; "
        "listed checks are strict xfails (a pass is reported as a failure)",
    )


def requested_backends(config) -> list[str] | None:
    """The backends named on the command line (or in the environment), or ``None``."""
    values = _getoption(config, BACKEND_OPTION) or []
    if not values and os.environ.get(ENV_BACKENDS):
        values = [os.environ[ENV_BACKENDS]]
    names: list[str] = []
    for value in values:
        for name in value.split(","):
            name = name.strip()
            if name and name not in names:
                names.append(name)
    return names or None


def backend_matrix(config) -> list[tuple[str, str | None]]:
    """``[(backend name, skip reason or None)]`` for the run.

    Named backends are always tried (a name that does not resolve fails ``backend.load``
    with the registry's explanation). Without names: every backend the registry lists;
    unavailable ones (missing optional dependency) carry a skip reason.
    """
    names = requested_backends(config)
    if names is not None:
        return [(n, None) for n in names]
    from grapheme_core.registry import list_backends

    rows = []
    for info in list_backends():
        if info.status == "unavailable":
            rows.append((info.name, f"backend {info.name!r} unavailable: {info.detail}"))
        else:  # available, or broken/incompatible: backend.load reports why
            rows.append((info.name, None))
    return rows


def expected_failures(config) -> dict[str, str]:
    from grapheme_core.conformance.runner import load_expected_failures

    path = _getoption(config, EXPECTED_OPTION)
    if not path:
        return {}
    try:
        return load_expected_failures(path)
    except ValueError as exc:
        import pytest

        raise pytest.UsageError(f"{EXPECTED_OPTION}: {exc}") from exc


def _getoption(config, name: str):
    try:
        return config.getoption(name)
    except ValueError:  # the plugin was disabled (-p no:grapheme_conformance)
        return None
