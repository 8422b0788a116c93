"""Running the checks outside pytest: :func:`run_conformance`, its report, and the
expected-failures file.

Expected-failures file format (UTF-8 text)::

    # grapheme conformance: checks my backend is known to fail
    grad.fd            # trailing comments are fine
    checkpoint.cross_backend

One check id per line; blank lines and everything after ``#`` are ignored. An unknown id
is an error (so a typo cannot silently hide a failure). A listed check that fails is
reported as ``xfailed`` and does not fail the run; a listed check that passes is reported
as ``xpassed`` and DOES fail the run (like pytest's strict xfail): remove it from the file.
"""

from __future__ import annotations

import json
import math
import platform
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from ..backend import API_VERSION, Backend
from .checks import CHECKS, Check, Context, select
from .tolerances import CheckFailure

PASSED, FAILED, ERROR, SKIPPED, XFAILED, XPASSED = (
    "passed",
    "failed",
    "error",
    "skipped",
    "xfailed",
    "xpassed",
)
#: outcomes that make a run fail
BAD_OUTCOMES = frozenset({FAILED, ERROR, XPASSED})
LOAD_CHECK = "backend.load"


@attrs.frozen
class CheckResult:
    backend: str
    check: str
    outcome: str  # passed | failed | error | skipped | xfailed | xpassed
    message: str = ""
    error: float | None = None  # worst absolute error found, when a value was wrong
    ratio: float | None = None  # worst error / allowed error (> 1 is out of tolerance)
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome not in BAD_OUTCOMES

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (a non-finite ``error``/``ratio`` becomes ``None``)."""
        out = attrs.asdict(self)
        for key in ("error", "ratio"):
            if out[key] is not None and not math.isfinite(out[key]):
                out[key] = None
        return out


@attrs.frozen
class ConformanceReport:
    results: tuple[CheckResult, ...]
    #: backend label -> why it could not be loaded
    load_errors: Mapping[str, str] = attrs.field(factory=dict)
    backends: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.load_errors and all(r.ok for r in self.results)

    @property
    def exit_code(self) -> int:
        """0: every check passed (or failed as expected); 1: some failed; 2: a backend
        could not be loaded."""
        if self.load_errors:
            return 2
        return 0 if self.ok else 1

    def counts(self, backend: str | None = None) -> dict[str, int]:
        out = dict.fromkeys((PASSED, FAILED, ERROR, SKIPPED, XFAILED, XPASSED), 0)
        for r in self.results:
            if backend is None or r.backend == backend:
                out[r.outcome] += 1
        return out

    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.ok]

    def result(self, backend: str, check: str) -> CheckResult:
        for r in self.results:
            if r.backend == backend and r.check == check:
                return r
        raise KeyError(f"no result for check {check!r} on backend {backend!r}")

    def to_json(self) -> dict[str, Any]:
        from .. import __version__

        return {
            "format": "grapheme-conformance-report",
            "format_version": 1,
            "grapheme_version": __version__,
            "kernel_api": API_VERSION,
            "python": platform.python_version(),
            "exit_code": self.exit_code,
            "ok": self.ok,
            "summary": self.counts(),
            "backends": {
                b: {
                    "loaded": b not in self.load_errors,
                    "load_error": self.load_errors.get(b),
                    "summary": self.counts(b),
                }
                for b in self.backends
            },
            "results": [r.to_json() for r in self.results],
        }

    def format(self, verbose: bool = False) -> str:
        """A human-readable table: one line per check (failures with their message)."""
        lines: list[str] = []
        marks = {
            PASSED: "PASS ",
            FAILED: "FAIL ",
            ERROR: "ERROR",
            SKIPPED: "SKIP ",
            XFAILED: "XFAIL",
            XPASSED: "XPASS",
        }
        for b in self.backends:
            lines.append(f"grapheme conformance: backend {b!r}")
            if b in self.load_errors:
                lines.append(f"  could not load: {self.load_errors[b]}")
            for r in (r for r in self.results if r.backend == b):
                if r.outcome == SKIPPED and b in self.load_errors and not verbose:
                    continue
                lines.append(f"  {marks[r.outcome]} {r.check:<34} {r.duration_s:6.2f}s")
                if r.message and (r.outcome != PASSED):
                    for part in r.message.splitlines():
                        lines.append(f"        {part}")
            c = self.counts(b)
            lines.append("  " + _summary_line(c))
        lines.append("total: " + _summary_line(self.counts()) + f" -> exit {self.exit_code}")
        return "\n".join(lines)

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        return path


def _summary_line(c: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in c.items() if n) or "no checks"


# -- expected failures ---------------------------------------------------------------------
def parse_expected_failures(text: str, source: str = "<expected failures>") -> dict[str, str]:
    """Parse the expected-failures format; returns ``{check id: reason}``."""
    out: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        body, _, comment = raw.partition("#")
        body = body.strip()
        if not body:
            continue
        if len(body.split()) != 1:
            raise ValueError(f"{source}:{lineno}: expected one check id per line, got {body!r}")
        if body not in CHECKS:
            raise ValueError(
                f"{source}:{lineno}: unknown conformance check id {body!r}; "
                f"known ids: {', '.join(CHECKS)}"
            )
        out[body] = comment.strip() or f"listed in {source}"
    return out


def load_expected_failures(
    spec: str | Path | Iterable[str] | Mapping[str, str] | None,
) -> dict[str, str]:
    """Expected failures from a file path, an iterable of ids, or a mapping id -> reason."""
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        parse_expected_failures("\n".join(spec))  # validates the ids
        return {k: str(v) for k, v in spec.items()}
    if isinstance(spec, str | Path):
        path = Path(spec)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read expected-failures file {path}: {exc}") from exc
        return parse_expected_failures(text, str(path))
    return parse_expected_failures("\n".join(spec), "<expected failures>")


# -- running ---------------------------------------------------------------------------------
def load_backend(
    backend: str | Backend, options: Mapping[str, Any] | None = None
) -> tuple[Backend | None, str, str | None]:
    """``(instance, label, None)`` or ``(None, label, why it failed)``. Never raises."""
    from ..registry import get_backend

    if not isinstance(backend, str):
        return backend, str(getattr(backend, "name", type(backend).__name__)), None
    try:
        return get_backend(backend, **dict(options or {})), backend, None
    except Exception as exc:
        return None, backend, f"{type(exc).__name__}: {exc}"


def run_check(
    check: Check | str,
    backend: str | Backend,
    *,
    options: Mapping[str, Any] | None = None,
    expected_failure: str | None = None,
    label: str | None = None,
) -> CheckResult:
    """Run one check on one backend; never raises (an unexpected exception is ``error``).

    ``expected_failure``: a reason string if the check is expected to fail.
    ``label``: the name to report (default: the registry name or ``backend.name``).
    """
    chk = CHECKS[check] if isinstance(check, str) else check
    instance, default_label, load_error = load_backend(backend, options)
    label = label or default_label
    if instance is None:
        if chk.id == LOAD_CHECK:
            result = CheckResult(
                label, chk.id, FAILED, f"{chk.id} failed on backend {label!r}: {load_error}"
            )
        else:
            result = CheckResult(
                label, chk.id, SKIPPED, f"backend {label!r} could not be loaded (see {LOAD_CHECK})"
            )
        return _expect(result, expected_failure)
    ctx = Context(instance, label)
    start = time.perf_counter()
    try:
        chk(ctx)
    except CheckFailure as exc:
        result = CheckResult(
            label,
            chk.id,
            FAILED,
            f"{chk.id} failed on backend {label!r}: {exc.message}",
            exc.error,
            exc.ratio,
        )
    except Exception as exc:
        tb = "".join(traceback.format_exception(exc)[-6:]).rstrip()
        result = CheckResult(
            label,
            chk.id,
            ERROR,
            f"{chk.id} raised on backend {label!r}: {type(exc).__name__}: {exc}\n{tb}",
        )
    else:
        result = CheckResult(label, chk.id, PASSED)
    return _expect(attrs.evolve(result, duration_s=time.perf_counter() - start), expected_failure)


def _expect(result: CheckResult, reason: str | None) -> CheckResult:
    if reason is None or result.outcome == SKIPPED:
        return result
    if result.outcome in (FAILED, ERROR):
        return attrs.evolve(
            result, outcome=XFAILED, message=f"expected failure ({reason}): {result.message}"
        )
    return attrs.evolve(
        result,
        outcome=XPASSED,
        message=f"{result.check} passed but is listed as an expected failure ({reason}); "
        "remove it from the expected-failures list",
    )


def run_conformance(
    backends: str | Backend | Iterable[str | Backend],
    expected_failures: str | Path | Iterable[str] | Mapping[str, str] | None = None,
    *,
    checks: Iterable[str] | None = None,
    options: Mapping[str, Any] | None = None,
    on_result: Callable[[CheckResult], None] | None = None,
) -> ConformanceReport:
    """Run the conformance checks on each backend (names are comma-separable).

    ``expected_failures``: a file path (see module docs), ids, or ``{id: reason}``.
    ``checks``: ids or globs (``"grad.*"``) to run a subset (``backend.load`` always
    runs). ``options``: keyword options
    for :func:`grapheme_core.get_backend` (e.g. ``{"device": "cuda"}``). ``on_result`` is
    called after each check (progress output).
    """
    if isinstance(backends, str) or not isinstance(backends, Iterable):
        backends = [backends]
    names: list[str | Backend] = []
    for b in backends:
        if isinstance(b, str):
            names += [n.strip() for n in b.split(",") if n.strip()]
        else:
            names.append(b)
    if not names:
        raise ValueError("run_conformance needs at least one backend")
    expected = load_expected_failures(expected_failures)
    selected = select(checks)
    if selected[0].id != LOAD_CHECK:  # always reported: it says why nothing else ran
        selected.insert(0, CHECKS[LOAD_CHECK])
    results: list[CheckResult] = []
    load_errors: dict[str, str] = {}
    labels: list[str] = []
    for backend in names:
        instance, label, error = load_backend(backend, options)
        labels.append(label)
        if instance is None:
            load_errors[label] = error or "unknown error"
        for chk in selected:
            target = backend if instance is None else instance
            result = run_check(chk, target, expected_failure=expected.get(chk.id), label=label)
            results.append(result)
            if on_result is not None:
                on_result(result)
    return ConformanceReport(tuple(results), load_errors, tuple(labels))
