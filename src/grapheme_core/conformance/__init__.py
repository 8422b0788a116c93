"""The backend conformance suite, shipped in the wheel (docs/backends.md, section 4).

Every check compares a backend with the float64 node-by-node oracle and/or central finite
differences, with the tolerances of :mod:`grapheme_core.conformance.tolerances`. Run it:

* ``pytest --pyargs grapheme_core.conformance --grapheme-backend NAME[,NAME]``
* ``grapheme-train conformance --backend NAME [--json] [--report FILE] [--expected-failures FILE]``
* ``run_conformance(["NAME"])`` from Python.
"""

from __future__ import annotations

from .checks import CHECKS, Check, Context, check, check_ids, select
from .graphs import Case, build, case_names, rebuild
from .runner import (
    NOT_APPLICABLE,
    CheckResult,
    ConformanceReport,
    load_backend,
    load_expected_failures,
    parse_expected_failures,
    run_check,
    run_conformance,
)
from .suite import CHECK_MODULES, SUITE_VERSION, load_check_modules
from .tolerances import FINITE_DIFFERENCES, FORWARD, GRAD, CheckFailure, Tolerance, compare

load_check_modules()  # every check module registers its checks (runner did it already)

__all__ = [
    "CHECKS",
    "CHECK_MODULES",
    "FINITE_DIFFERENCES",
    "FORWARD",
    "GRAD",
    "NOT_APPLICABLE",
    "SUITE_VERSION",
    "Case",
    "Check",
    "CheckFailure",
    "CheckResult",
    "ConformanceReport",
    "Context",
    "Tolerance",
    "build",
    "case_names",
    "check",
    "check_ids",
    "compare",
    "load_backend",
    "load_check_modules",
    "load_expected_failures",
    "parse_expected_failures",
    "rebuild",
    "run_check",
    "run_conformance",
    "select",
]
