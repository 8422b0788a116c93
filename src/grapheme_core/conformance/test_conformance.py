"""The conformance suite as pytest tests, one per (backend, check id).

Run: ``pytest --pyargs grapheme_core.conformance --grapheme-backend NAME[,NAME]``.
Parametrization is done here (not only in the plugin) so the module also works with
plugin autoloading disabled; it then runs against every installed backend.
"""

from __future__ import annotations

import pytest

from grapheme_core.conformance import CHECKS, run_check
from grapheme_core.conformance.plugin import backend_matrix, expected_failures
from grapheme_core.conformance.runner import ERROR, FAILED, NOT_APPLICABLE, SKIPPED, XPASSED


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "grapheme_check" not in metafunc.fixturenames:
        return
    xfails = expected_failures(metafunc.config)
    params = []
    for backend, skip in backend_matrix(metafunc.config):
        for check_id in CHECKS:
            marks = []
            if skip is not None:
                marks.append(pytest.mark.skip(reason=skip))
            elif check_id in xfails:
                marks.append(pytest.mark.xfail(reason=xfails[check_id], strict=True))
            params.append(pytest.param(backend, check_id, marks=marks, id=f"{backend}-{check_id}"))
    metafunc.parametrize(("grapheme_backend", "grapheme_check"), params)


def test_conformance(grapheme_backend: str, grapheme_check: str) -> None:
    result = run_check(grapheme_check, grapheme_backend)
    if result.outcome in (SKIPPED, NOT_APPLICABLE):
        pytest.skip(result.message)  # not applicable: the backend lacks a capability
    if result.outcome in (FAILED, ERROR, XPASSED):
        pytest.fail(result.message, pytrace=False)
