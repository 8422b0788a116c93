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

Outcomes: ``passed``, ``failed``, ``error`` (the check raised), ``skipped`` (the backend
did not load), ``not_applicable`` (the check needs a capability the backend does not
declare, see :func:`grapheme_core.backend.backend_capabilities`), ``xfailed``, ``xpassed``.
The report is the certificate: it names the suite version, grapheme's version and, per
backend, the plugin's distribution and version, its capabilities and ``N/M passed``.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import math
import platform
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from ..backend import API_VERSION, Backend, backend_capabilities
from ..guards import BackendResultError
from .checks import CHECKS, DTYPES, Check, Context, select
from .suite import SUITE_VERSION, load_check_modules
from .tolerances import CheckFailure

load_check_modules()

PASSED, FAILED, ERROR, SKIPPED, NOT_APPLICABLE, XFAILED, XPASSED = (
    "passed",
    "failed",
    "error",
    "skipped",
    "not_applicable",
    "xfailed",
    "xpassed",
)
OUTCOMES = (PASSED, FAILED, ERROR, SKIPPED, NOT_APPLICABLE, XFAILED, XPASSED)
#: outcomes that make a run fail
BAD_OUTCOMES = frozenset({FAILED, ERROR, XPASSED})
LOAD_CHECK = "backend.load"


@attrs.frozen
class CheckResult:
    """The outcome of one check on one backend (see the module docs for the outcomes)."""

    backend: str
    check: str
    outcome: str  # one of OUTCOMES
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
    """Every result of a run, with what the certificate says about each backend."""

    results: tuple[CheckResult, ...]
    #: backend label -> why it could not be loaded
    load_errors: Mapping[str, str] = attrs.field(factory=dict)
    backends: tuple[str, ...] = ()
    #: backend label -> {"plugin", "distribution", "version", "capabilities"}
    origins: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)

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
        """How many results of each outcome (for one backend, or all)."""
        out = dict.fromkeys(OUTCOMES, 0)
        for r in self.results:
            if backend is None or r.backend == backend:
                out[r.outcome] += 1
        return out

    def passed_line(self, backend: str) -> str:
        """``"N/M passed"``: passes out of the checks that apply to ``backend`` (checks
        needing a capability it lacks are not counted in M), plus the other outcomes."""
        c = self.counts(backend)
        applicable = sum(c.values()) - c[NOT_APPLICABLE]
        rest = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in c.items() if n and k != PASSED)
        return f"{c[PASSED]}/{applicable} passed" + (f" ({rest})" if rest else "")

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
            "format_version": 2,
            "suite_version": SUITE_VERSION,
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
                    **_origin_json(self.origins.get(b)),
                    "passed": self.passed_line(b).split(" ", 1)[0],
                    "summary": self.counts(b),
                }
                for b in self.backends
            },
            "results": [r.to_json() for r in self.results],
        }

    def format(self, verbose: bool = False) -> str:
        """A human-readable table: one line per check (failures with their message)."""
        lines: list[str] = []
        for b in self.backends:
            lines.append(f"grapheme conformance {SUITE_VERSION}: backend {b!r}")
            origin = self.origins.get(b)
            if origin:
                lines.append("  " + describe_origin(origin))
            if b in self.load_errors:
                lines.append(f"  could not load: {self.load_errors[b]}")
            for r in (r for r in self.results if r.backend == b):
                if r.outcome == SKIPPED and b in self.load_errors and not verbose:
                    continue
                lines.append(result_line(r))
                if r.message and (r.outcome not in (PASSED, NOT_APPLICABLE) or verbose):
                    for part in r.message.splitlines():
                        lines.append(f"        {part}")
            lines.append(f"  {b}: {self.passed_line(b)}")
        lines.append("total: " + _summary_line(self.counts()) + f" -> exit {self.exit_code}")
        return "\n".join(lines)

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        return path


#: the mark of each outcome in the human-readable table
MARKS = {
    PASSED: "PASS ",
    FAILED: "FAIL ",
    ERROR: "ERROR",
    SKIPPED: "SKIP ",
    NOT_APPLICABLE: "N/A  ",
    XFAILED: "XFAIL",
    XPASSED: "XPASS",
}


def result_line(r: CheckResult) -> str:
    """One line of the table: mark, check id, duration."""
    return f"  {MARKS[r.outcome]} {r.check:<34} {r.duration_s:6.2f}s"


def describe_origin(origin: Mapping[str, Any]) -> str:
    """``plugin 'x' from distribution d 1.2; capabilities: float64`` (one line)."""
    dist = origin.get("distribution")
    where = f"distribution {dist} {origin.get('version')}" if dist else "no installed distribution"
    caps = ", ".join(origin.get("capabilities") or ()) or "none"
    return f"plugin {origin.get('plugin')!r} from {where}; capabilities: {caps}"


def _origin_json(origin: Mapping[str, Any] | None) -> dict[str, Any]:
    origin = origin or {}
    caps = origin.get("capabilities")
    return {
        "plugin": origin.get("plugin"),
        "distribution": origin.get("distribution"),
        "distribution_version": origin.get("version"),
        "capabilities": None if caps is None else sorted(caps),
    }


def _summary_line(c: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in c.items() if n) or "no checks"


def backend_origin(label: str, backend: Backend | None) -> dict[str, Any]:
    """Where a backend comes from, for the certificate: the plugin (entry-point) name, the
    installed distribution that provides it and its version (from the package metadata,
    via the ``grapheme.backends`` entry point), and the backend's capabilities.

    A plugin registered with ``register_plugin`` has no entry point: the distribution is
    then the one that ships the backend class's top-level package, if any.
    """
    from ..hookspecs import ENTRY_POINT_GROUP
    from ..registry import list_backends

    plugin = next((r.plugin for r in list_backends() if r.name == label), None)
    dist = version = None
    if plugin is not None:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == plugin and ep.dist is not None:
                dist, version = ep.dist.name, ep.dist.version
                break
    if dist is None and backend is not None:
        top = type(backend).__module__.split(".", 1)[0]
        names = _packages_distributions().get(top) or []
        if names:
            dist = names[0]
            version = importlib.metadata.version(dist)
    caps: list[str] | None = None
    if backend is not None:
        try:
            caps = sorted(backend_capabilities(backend))
        except ValueError:
            caps = None
    return {"plugin": plugin, "distribution": dist, "version": version, "capabilities": caps}


@functools.lru_cache(maxsize=4)
def _distributions_on(path: tuple[str, ...]) -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _packages_distributions() -> Mapping[str, list[str]]:
    """``importlib.metadata.packages_distributions()``, computed once per ``sys.path``:
    it reads the file list of every installed distribution (about 0.1 s), and a run
    asks once per backend."""
    return _distributions_on(tuple(sys.path))


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
    try:
        caps = backend_capabilities(instance)
    except ValueError as exc:
        if chk.id != LOAD_CHECK:
            return _expect(
                CheckResult(label, chk.id, SKIPPED, f"{exc} (see {LOAD_CHECK})"),
                expected_failure,
            )
        caps = frozenset()
    missing = [c for c in chk.requires if c not in caps]
    if missing:
        return CheckResult(
            label,
            chk.id,
            NOT_APPLICABLE,
            f"{chk.id} needs the backend capability {', '.join(missing)}, which backend "
            f"{label!r} does not declare",
        )
    dtypes = tuple(d for d in DTYPES if d != "float64" or "float64" in caps)
    ctx = Context(instance, label, dtypes, caps)
    note = "" if dtypes == DTYPES else "ran for float32 only: the backend lacks float64"
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
    except BackendResultError as exc:  # the core's own guard caught a wrong-shaped result
        result = CheckResult(label, chk.id, FAILED, f"{chk.id} failed on backend {label!r}: {exc}")
    except Exception as exc:
        tb = "".join(traceback.format_exception(exc)[-6:]).rstrip()
        result = CheckResult(
            label,
            chk.id,
            ERROR,
            f"{chk.id} raised on backend {label!r}: {type(exc).__name__}: {exc}\n{tb}",
        )
    else:
        result = CheckResult(label, chk.id, PASSED, note)
    return _expect(attrs.evolve(result, duration_s=time.perf_counter() - start), expected_failure)


def _expect(result: CheckResult, reason: str | None) -> CheckResult:
    if reason is None or result.outcome in (SKIPPED, NOT_APPLICABLE):
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
    on_start: Callable[[str, Check, int, int], None] | None = None,
) -> ConformanceReport:
    """Run the conformance checks on each backend (names are comma-separable).

    ``expected_failures``: a file path (see module docs), ids, or ``{id: reason}``.
    ``checks``: ids, substrings, globs (``"grad.*"``) or ``pytest -k`` style expressions
    to run a subset (see :func:`~grapheme_core.conformance.checks.select`; ``backend.load``
    always runs). ``options``: keyword options for :func:`grapheme_core.get_backend`
    (e.g. ``{"device": "cuda"}``). ``on_start(backend, check, k, n)`` is called before
    the k-th of n checks and ``on_result`` after each (progress output).
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
    origins: dict[str, dict[str, Any]] = {}
    total = len(names) * len(selected)
    for backend in names:
        instance, label, error = load_backend(backend, options)
        labels.append(label)
        origins.setdefault(label, backend_origin(label, instance))
        if instance is None:
            load_errors[label] = error or "unknown error"
        for chk in selected:
            if on_start is not None:
                on_start(label, chk, len(results) + 1, total)
            target = backend if instance is None else instance
            result = run_check(chk, target, expected_failure=expected.get(chk.id), label=label)
            results.append(result)
            if on_result is not None:
                on_result(result)
    return ConformanceReport(tuple(results), load_errors, tuple(labels), origins)
