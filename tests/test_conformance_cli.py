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
    check_ids,
    parse_expected_failures,
    run_check,
    run_conformance,
)
from grapheme_train.conformance_cmd import conformance


class LazyGradients(NumpyBackend):
    """Weight gradients off by 1%: a failure the suite must size correctly."""

    def backward(self, compiled, weight, bias, cache, grad_out):
        gw, gb, gx = super().backward(compiled, weight, bias, cache, grad_out)
        return gw * 1.01, gb, gx


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
