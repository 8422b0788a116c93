"""``run_conformance``, its report, the expected-failures file and the
``grapheme-train conformance`` command (exit 0 pass, 1 fail, 2 backend cannot load)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import ClassVar

import numpy as np
import pytest
from click.testing import CliRunner

from grapheme_backends.numpy_backend import NumpyBackend
from grapheme_core import BackendSpec, hookimpl, register_plugin, unregister_plugin
from grapheme_core.conformance import (
    CHECKS,
    SUITE_VERSION,
    check,
    check_ids,
    parse_expected_failures,
    run_check,
    run_conformance,
)
from grapheme_core.conformance.checks import select
from grapheme_core.hookspecs import ENTRY_POINT_GROUP
from grapheme_train import conformance_cmd
from grapheme_train.conformance_cmd import conformance


class LazyGradients(NumpyBackend):
    """Weight gradients off by 1%: a failure the suite must size correctly."""

    def backward(self, compiled, weight, bias, cache, grad_out):
        gw, gb, gx = super().backward(compiled, weight, bias, cache, grad_out)
        return gw * 1.01, gb, gx


class Float32Only(NumpyBackend):
    """Declares no float64 capability and refuses float64 arrays outright."""

    capabilities = ()

    def asarray(self, value, dtype):
        if dtype != "float32":
            raise ValueError(f"this backend has no {dtype}")
        return super().asarray(value, dtype)

    def zeros(self, shape, dtype):
        if dtype != "float32":
            raise ValueError(f"this backend has no {dtype}")
        return super().zeros(shape, dtype)


class OptionsBackend(NumpyBackend):
    seen: ClassVar[list[dict]] = []

    def __init__(self, **options) -> None:
        OptionsBackend.seen.append(options)


class _Plugin:
    @staticmethod
    @hookimpl
    def grapheme_backends():
        return [
            BackendSpec("cli-lazy-grads", LazyGradients),
            BackendSpec("cli-options", OptionsBackend),
            BackendSpec("cli-float32-only", Float32Only),
        ]


@pytest.fixture(scope="module", autouse=True)
def plugin():
    register_plugin(_Plugin(), "grapheme-tests-cli")
    yield
    unregister_plugin("grapheme-tests-cli")


def invoke(*args: str):
    return CliRunner().invoke(conformance, list(args), catch_exceptions=False)


# -- the library ---------------------------------------------------------------------------
def test_check_ids_are_stable_and_cover_design_section_5():
    ids = check_ids()
    assert len(ids) == len(set(ids))
    assert all(i.count(".") == 1 and i == i.lower() for i in ids)
    required = {
        "backend.load",
        "init.seeded",
        *(
            f"forward.{g}"
            for g in (
                "empty",
                "single_node",
                "chain",
                "diamond",
                "wide_fan_in",
                "deep",
                "multi_edges",
                "activations",
                "disconnected",
                "random_dags",
            )
        ),
        "grad.oracle",
        "grad.fd",
        "grad.activations",
        "grad.at_zero",
        "accumulate.two_calls",
        "accumulate.zero_grad",
        "optim.sgd",
        "optim.adam",
        "embedding.repeated_indices",
        "edit.add_edge_then_forward",
        "edit.add_node_then_forward",
        "edit.remove_edge_then_forward",
        "edit.remove_node_then_forward",
        "dtype.kept",
        "checkpoint.cross_backend",
    }
    assert required <= set(ids)
    assert ids[0] == "backend.load"


def test_run_conformance_on_numpy_passes_everything():
    report = run_conformance("numpy")
    assert report.exit_code == 0, report.format()
    assert report.counts()["passed"] == len(CHECKS)
    assert report.backends == ("numpy",)


def test_run_conformance_accepts_lists_globs_and_instances():
    report = run_conformance(["numpy,cli-lazy-grads", NumpyBackend()], checks=["forward.c*"])
    assert report.backends == ("numpy", "cli-lazy-grads", "numpy")
    per_backend = {r.check for r in report.results if r.backend == "cli-lazy-grads"}
    assert per_backend == {"backend.load", "forward.chain"}  # backend.load always runs
    assert report.exit_code == 0
    with pytest.raises(ValueError, match=r"no conformance check matches 'nope\.\*'"):
        run_conformance("numpy", checks=["nope.*"])


def test_a_wrong_gradient_is_reported_with_its_size():
    result = run_check("grad.oracle", "cli-lazy-grads")
    assert result.outcome == "failed"
    assert result.message.startswith("grad.oracle failed on backend 'cli-lazy-grads': ")
    assert "weight gradients" in result.message and "max abs error" in result.message
    assert result.error > 0 and result.ratio > 1
    # a 1% error on float32 gradients (tolerance rtol 1e-4) is ~100x the tolerance
    assert 10 < result.ratio < 1e4


def test_unloadable_backend_fails_backend_load_and_skips_the_rest():
    report = run_conformance("no-such-backend", checks=["forward.chain"])
    assert report.exit_code == 2
    assert "no-such-backend" in report.load_errors
    load = report.result("no-such-backend", "backend.load")
    assert load.outcome == "failed" and "no backend named 'no-such-backend'" in load.message
    assert report.result("no-such-backend", "forward.chain").outcome == "skipped"


def test_expected_failures_turn_failures_into_xfail_and_passes_into_xpass():
    report = run_conformance(
        "cli-lazy-grads",
        {"grad.oracle": "known", "forward.chain": "wrongly listed"},
        checks=["grad.oracle", "forward.chain"],
    )
    assert report.result("cli-lazy-grads", "grad.oracle").outcome == "xfailed"
    xpass = report.result("cli-lazy-grads", "forward.chain")
    assert xpass.outcome == "xpassed" and "remove it" in xpass.message
    assert report.exit_code == 1
    report = run_conformance("cli-lazy-grads", ["grad.oracle"], checks=["grad.oracle"])
    assert report.exit_code == 0


def test_expected_failures_format():
    text = "# header\n\ngrad.fd   # reason here\n  optim.adam\n"
    assert parse_expected_failures(text) == {
        "grad.fd": "reason here",
        "optim.adam": "listed in <expected failures>",
    }
    with pytest.raises(ValueError, match=r"x\.txt:2: unknown conformance check id 'grad\.typo'"):
        parse_expected_failures("grad.fd\ngrad.typo\n", "x.txt")
    with pytest.raises(ValueError, match="one check id per line"):
        parse_expected_failures("grad.fd optim.adam\n")


def test_json_report_is_strict_json():
    report = run_conformance("cli-lazy-grads", checks=["grad.*", "init.seeded"])
    data = json.loads(json.dumps(report.to_json(), allow_nan=False))
    assert data["format"] == "grapheme-conformance-report"
    assert data["exit_code"] == 1 and data["ok"] is False
    assert data["backends"]["cli-lazy-grads"]["loaded"] is True
    row = next(r for r in data["results"] if r["check"] == "grad.oracle")
    assert row["outcome"] == "failed" and row["error"] > 0


# -- the command ---------------------------------------------------------------------------
def test_cli_passes_with_exit_0():
    result = invoke("--backend", "numpy", "-k", "forward.chain", "-k", "optim.*")
    assert result.exit_code == 0, result.output
    assert "PASS  forward.chain" in result.output and "PASS  optim.adam" in result.output
    assert "all checks passed (exit 0)" in result.output


def test_cli_failure_exit_1_names_the_check_and_error(tmp_path):
    report = tmp_path / "out" / "report.json"
    result = invoke("--backend", "cli-lazy-grads", "-k", "grad.oracle", "--report", str(report))
    assert result.exit_code == 1, result.output
    assert "FAIL  grad.oracle" in result.output
    assert "grad.oracle failed on backend 'cli-lazy-grads'" in result.output
    assert "max abs error" in result.output
    data = json.loads(report.read_text())
    assert data["exit_code"] == 1 and data["summary"]["failed"] == 1


def test_cli_backend_that_cannot_load_exits_2():
    result = invoke("--backend", "no-such-backend")
    assert result.exit_code == 2, result.output
    assert "no backend named 'no-such-backend'" in result.output
    assert "installed:" in result.output and "numpy" in result.output


def test_cli_json_output_and_expected_failures(tmp_path):
    listed = tmp_path / "expected.txt"
    listed.write_text("grad.oracle  # off by one percent\n")
    result = invoke(
        "-b", "cli-lazy-grads", "-k", "grad.oracle", "--json", "--expected-failures", str(listed)
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    outcomes = {r["check"]: r["outcome"] for r in data["results"]}
    assert outcomes == {"backend.load": "passed", "grad.oracle": "xfailed"}
    listed.write_text("forward.chain\n")
    result = invoke("-b", "numpy", "-k", "forward.chain", "--expected-failures", str(listed))
    assert result.exit_code == 1 and "XPASS forward.chain" in result.output


def test_cli_usage_errors_exit_2(tmp_path):
    assert invoke().exit_code == 2  # no --backend
    bad = tmp_path / "bad.txt"
    bad.write_text("not.a_check\n")
    result = invoke("-b", "numpy", "--expected-failures", str(bad))
    assert result.exit_code == 2 and "unknown conformance check id 'not.a_check'" in result.output
    result = invoke("-b", "numpy", "-k", "zzz")
    assert result.exit_code == 2 and "no conformance check matches" in result.output
    assert invoke("-b", "numpy", "-o", "novalue").exit_code == 2


def test_cli_list_checks():
    result = invoke("--list-checks")
    assert result.exit_code == 0
    listed = [line.split()[0] for line in result.output.splitlines()]
    assert listed == check_ids()


def test_cli_passes_backend_options_to_the_factory():
    OptionsBackend.seen.clear()
    result = invoke(
        "-b", "cli-options", "-k", "forward.chain", "-o", "threads=4", "-o", "mode=fast"
    )
    assert result.exit_code == 0, result.output
    assert {"threads": 4, "mode": "fast"} in OptionsBackend.seen


@pytest.mark.slow  # two interpreters
def test_grapheme_train_exposes_the_command():
    from grapheme_train import cli as cli_module

    group = getattr(cli_module, "cli", None)
    if group is None or "conformance" not in getattr(group, "commands", {}):
        pytest.skip("grapheme_train.cli does not register the `conformance` command yet")
    proc = subprocess.run(
        [sys.executable, "-m", "grapheme_train", "conformance", "-b", "numpy", "-k", "grad.fd"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "grapheme_train", "conformance", "-b", "no-such-backend"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr


def test_report_format_is_readable():
    report = run_conformance("cli-lazy-grads", checks=["grad.oracle", "forward.chain"])
    text = report.format()
    assert "backend 'cli-lazy-grads'" in text
    assert "FAIL  grad.oracle" in text and "PASS  forward.chain" in text
    assert text.rstrip().endswith("-> exit 1")
    assert np.isfinite(report.result("cli-lazy-grads", "grad.oracle").error)


# -- suite 2: selection, capabilities, the certificate, progress ---------------------------
def test_select_matches_substrings_globs_and_expressions():
    ids = [c.id for c in select(["clip"])]
    assert ids == [c for c in CHECKS if "clip" in c] and "grad.clip_factor" in ids
    assert [c.id for c in select(["grad.c*"])] == [c for c in CHECKS if c.startswith("grad.c")]
    expr = [c.id for c in select(["grad and not fd and not clip"])]
    assert "grad.oracle" in expr and "grad.fd" not in expr and "grad.clip" not in expr
    assert [c.id for c in select(["(forward.chain or grad.fd)"])] == ["forward.chain", "grad.fd"]
    for bad in ("grad and", "not", "(grad", "grad)"):
        with pytest.raises(ValueError, match="check pattern"):
            select([bad])


def test_requires_names_known_capabilities():
    with pytest.raises(ValueError, match=r"requires unknown capabilities \['warp_drive'\]"):
        check("test.unknown_capability", "never registered", requires=("warp_drive",))
    assert "test.unknown_capability" not in CHECKS
    assert CHECKS["grad.fd"].requires == ("float64",)


def test_missing_capability_is_not_applicable_not_a_pass():
    report = run_conformance("cli-float32-only")
    assert report.exit_code == 0, report.format()
    fd = report.result("cli-float32-only", "grad.fd")
    assert fd.outcome == "not_applicable" and "float64" in fd.message
    needing = [c for c in CHECKS.values() if c.requires]  # it declares no capability at all
    counts = report.counts("cli-float32-only")
    assert counts["not_applicable"] == len(needing) and counts["failed"] == 0
    assert counts["passed"] == len(CHECKS) - len(needing)
    assert report.passed_line("cli-float32-only") == (
        f"{len(CHECKS) - len(needing)}/{len(CHECKS) - len(needing)} passed "
        f"({len(needing)} not applicable)"
    )
    ran = report.result("cli-float32-only", "forward.chain")
    assert ran.outcome == "passed" and "float32 only" in ran.message
    # listing a not-applicable check as an expected failure does not turn it into XPASS
    report = run_conformance("cli-float32-only", ["grad.fd"], checks=["grad.fd"])
    assert report.result("cli-float32-only", "grad.fd").outcome == "not_applicable"
    assert report.exit_code == 0


def test_certificate_names_suite_plugin_distribution_and_capabilities():
    import importlib.metadata

    data = run_conformance(["numpy", "cli-float32-only"], checks=["grad.fd"]).to_json()
    assert data["format_version"] == 2 and data["suite_version"] == SUITE_VERSION
    numpy_row = data["backends"]["numpy"]
    ep = next(
        e
        for e in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        if e.name == numpy_row["plugin"]
    )
    assert numpy_row["distribution"] == ep.dist.name
    assert numpy_row["distribution_version"] == ep.dist.version
    assert numpy_row["capabilities"] == ["candidate_edge_grads", "float64"]
    assert numpy_row["passed"] == "2/2"
    other = data["backends"]["cli-float32-only"]
    assert other["plugin"] == "grapheme-tests-cli" and other["distribution"] is None
    assert other["capabilities"] == [] and other["passed"] == "1/1"
    assert other["summary"]["not_applicable"] == 1


def test_cli_prints_n_of_m_and_shows_progress_only_on_a_terminal(monkeypatch):
    result = CliRunner().invoke(conformance, ["-b", "cli-float32-only", "-k", "grad.fd or chain"])
    assert result.exit_code == 0, result.output
    assert "cli-float32-only: 2/2 passed (1 not applicable)" in result.output
    assert "N/A   grad.fd" in result.output and "[1/" not in result.output
    monkeypatch.setattr(conformance_cmd, "_is_terminal", lambda: True)
    result = CliRunner().invoke(conformance, ["-b", "numpy", "-k", "forward.c"])
    assert result.exit_code == 0
    assert "[1/2] numpy: running backend.load" in result.stderr
    assert "[2/2] numpy: running forward.chain" in result.stderr
    assert "[1/" not in result.stdout and "numpy: 2/2 passed" in result.stdout
    result = CliRunner().invoke(conformance, ["-b", "numpy", "-k", "forward.c", "--json"])
    assert result.exit_code == 0 and "[1/" not in result.stderr
    assert json.loads(result.stdout)["backends"]["numpy"]["passed"] == "2/2"


def test_backends_doc_lists_every_check_and_the_true_count():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "backends.md").read_text()
    missing = [c for c in CHECKS if f"`{c}`" not in doc]
    assert not missing, f"docs/backends.md section 4.2 lacks {missing}"
    assert f"This is suite version {SUITE_VERSION} ({len(CHECKS)} checks)." in doc
    assert f'"suite_version": "{SUITE_VERSION}"' in doc
    assert f"The {len(CHECKS)} checks of suite {SUITE_VERSION} all ran here" in doc
    assert "DESIGN" not in doc
