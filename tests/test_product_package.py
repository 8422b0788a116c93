"""The distribution name, the LICENSE, ``--version`` and the install hints (issue 12.1)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from click.testing import CliRunner

import grapheme_core
from grapheme_core import about, list_backends
from grapheme_train.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def test_distribution_name_is_not_the_unrelated_grapheme_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == about.DISTRIBUTION
    assert about.DISTRIBUTION != "grapheme"  # taken on the index by Unicode helpers
    example = tomllib.loads((ROOT / "examples/third_party_backend/pyproject.toml").read_text())
    deps = example["project"]["dependencies"]
    assert any(d.startswith(f"{about.DISTRIBUTION}>=") for d in deps), deps
    assert not any(re.match(r"grapheme\s*(>|=|\[|$)", d) for d in deps), deps


def test_license_file_is_the_declared_mit_license():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert "the grapheme authors" in text


def test_version_option_prints_the_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"grapheme-train {about.version()} ")
    assert about.DISTRIBUTION in result.output
    assert about.version() == grapheme_core.__version__  # installed metadata or source tree


def test_install_hints_name_the_new_distribution():
    hints = " ".join(r.detail for r in list_backends()) + about.install_hint("torch")
    assert "'grapheme[" not in hints
    assert about.install_hint("torch") == f"pip install '{about.DISTRIBUTION}[torch]'"


def test_no_install_hint_in_sources_or_docs_names_the_old_distribution():
    paths = [*ROOT.glob("src/**/*.py"), *ROOT.glob("docs/*.md"), ROOT / "README.md"]
    paths += list(ROOT.glob("examples/**/*.md")) + list(ROOT.glob("examples/**/*.toml"))
    old = re.compile(r"install '?grapheme\[|\"grapheme>=")
    stale = [str(p) for p in paths if old.search(p.read_text())]
    assert stale == []
