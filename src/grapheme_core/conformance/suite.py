"""The one place that says which modules hold conformance checks, and the suite's version.

Importing :mod:`grapheme_core.conformance` imports every module of :data:`CHECK_MODULES`
(in order), and each registers its checks with the ``@check`` decorator of
:mod:`grapheme_core.conformance.checks`; the registry ``CHECKS`` then lists them in suite
order. A new family of checks is a new module ``checks_<topic>.py`` in this package plus
one entry in :data:`CHECK_MODULES` (and, because it adds checks, a minor bump of
:data:`SUITE_VERSION`).
"""

from __future__ import annotations

import importlib

#: Version of the check set, written into every certificate (JSON report). The minor
#: number grows when checks are added; the major number when a check is removed or its
#: tolerance loosened (check ids never change meaning).
SUITE_VERSION = "2.1"

#: Modules of this package that define checks, imported in this order (suite order).
CHECK_MODULES: tuple[str, ...] = (
    "checks",  # the registry, the core checks (load, forward, grad, optim, edits, ...)
    "checks_protocol",  # direct protocol semantics: to_numpy copies, concat, take, ...
    "checks_usage",  # model usage the core checks miss: inputs with in-edges, 1-D, ...
    "checks_numeric",  # saturation and clipping factors
    "checks_scale",  # a graph large enough to cross kernel size thresholds
    "checks_edits",  # random edit sequences against the oracle and a fresh build
    "checks_topology",  # API 1.1: gradients of candidate edges (RigL), vs oracle and FD
)


def load_check_modules() -> None:
    """Import every module of :data:`CHECK_MODULES` (idempotent)."""
    for name in CHECK_MODULES:
        importlib.import_module(f"{__package__}.{name}")
