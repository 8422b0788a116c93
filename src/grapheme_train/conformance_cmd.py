"""``grapheme-train conformance``: certify a backend against the conformance suite.

Exit codes: 0 every check passed (listed expected failures may fail), 1 some check failed
(or an expected failure passed), 2 a backend could not be loaded or the command line is
wrong. The same checks run under pytest with
``pytest --pyargs grapheme_core.conformance --grapheme-backend NAME``.

On a terminal (and only there: not with ``--json``, not when stdout is a pipe or a file)
a ``[k/N] running CHECK`` status line on stderr shows progress and is erased when each
check finishes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from grapheme_train.options import backend_options

__all__ = ["conformance"]


def _is_terminal() -> bool:
    """Whether stdout and stderr are both an interactive terminal (progress is shown)."""
    return sys.stdout.isatty() and sys.stderr.isatty()


@click.command("conformance", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--backend",
    "-b",
    "backends",
    multiple=True,
    metavar="NAME[,NAME]",
    help="Backend(s) to certify (repeat or comma-separate). Required.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report instead of the table.")
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE.json",
    help="Also write the JSON report to FILE.json.",
)
@click.option(
    "--expected-failures",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Check ids expected to fail, one per line ('#' starts a comment). They are "
    "reported as XFAIL; one that passes is XPASS and fails the run.",
)
@click.option(
    "--check",
    "-k",
    "checks",
    multiple=True,
    metavar="ID",
    help="Only run checks matching ID: an id, a substring ('clip'), a glob ('grad.*') or a "
    "pytest -k expression ('grad and not fd'); repeatable (any match runs).",
)
@click.option(
    "--option",
    "-o",
    "options",
    multiple=True,
    callback=backend_options,
    metavar="KEY=VALUE",
    help="Option for the backend factory, e.g. -o device=cuda (values parsed as JSON when "
    "possible).",
)
@click.option("--list-checks", is_flag=True, help="List the check ids with their titles and exit.")
@click.pass_context
def conformance(
    ctx: click.Context,
    backends: tuple[str, ...],
    as_json: bool,
    report: Path | None,
    expected_failures: Path | None,
    checks: tuple[str, ...],
    options: dict[str, Any],
    list_checks: bool,
) -> None:
    """Run the backend conformance suite against one or more backends (docs/backends.md).

    Every check compares the backend with the float64 node-by-node oracle or finite
    differences. Exit 0: all pass; 1: some fail; 2: a backend cannot be loaded.
    """
    from grapheme_core.conformance import CHECKS, SUITE_VERSION, run_conformance, select
    from grapheme_core.conformance.runner import (
        describe_origin,
        load_expected_failures,
        result_line,
    )

    if list_checks:
        for chk in CHECKS.values():
            needs = f" [requires {', '.join(chk.requires)}]" if chk.requires else ""
            click.echo(f"{chk.id:<34} {chk.title}{needs}")
        return
    names = [n.strip() for value in backends for n in value.split(",") if n.strip()]
    if not names:
        raise click.UsageError("name the backend(s) to certify with --backend NAME")
    try:
        select(checks or None)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--check") from None
    try:
        expected = load_expected_failures(expected_failures)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--expected-failures") from None

    current: list[str] = []
    live = not as_json and _is_terminal()
    status = [""]

    def clear_status() -> None:
        if status[0]:
            click.echo("\r" + " " * len(status[0]) + "\r", nl=False, err=True)
            status[0] = ""

    def starting(backend: str, chk, k: int, n: int) -> None:
        if live:
            clear_status()
            status[0] = f"[{k}/{n}] {backend}: running {chk.id}"
            click.echo(status[0], nl=False, err=True)

    def progress(result) -> None:
        if as_json:
            return
        clear_status()
        if not current or current[-1] != result.backend:
            current.append(result.backend)
            click.echo(f"grapheme conformance {SUITE_VERSION}: backend {result.backend!r}")
        if result.outcome == "skipped" and result.check != "backend.load":
            return
        click.echo(result_line(result))
        if result.outcome not in ("passed", "not_applicable") and result.message:
            for line in result.message.splitlines():
                click.echo(f"        {line}")

    result = run_conformance(
        names,
        expected,
        checks=checks or None,
        options=options,
        on_result=progress,
        on_start=starting,
    )
    clear_status()
    if report is not None:
        try:
            result.write_json(report)
        except OSError as exc:
            click.echo(f"Error: --report {report}: cannot write ({exc})", err=True)
            ctx.exit(2)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        for name, error in result.load_errors.items():
            click.echo(f"{name}: could not be loaded: {error}", err=True)
    else:
        for name in result.backends:
            origin = result.origins.get(name)
            if origin:
                click.echo(f"{name}: {describe_origin(origin)}")
            click.echo(f"{name}: {result.passed_line(name)}")
        verdict = {0: "all checks passed", 1: "some checks failed", 2: "a backend did not load"}
        click.echo(f"conformance: {verdict[result.exit_code]} (exit {result.exit_code})")
        if report is not None:
            click.echo(f"report written to {report}")
    sys.stdout.flush()
    ctx.exit(result.exit_code)
