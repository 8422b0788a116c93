"""Backend registry behaviour, including under bad plugins (DESIGN sec. 4).

Entry-point tests install throw-away distributions: a ``*.dist-info`` directory with an
``entry_points.txt`` placed on ``sys.path``, read by a fresh ``Registry()`` exactly as
installed plugins are.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest

import grapheme_core
from grapheme_backends.numpy_backend import NumpyBackend
from grapheme_core import (
    API_VERSION,
    BackendLoadError,
    BackendNotFoundError,
    BackendSpec,
    DagNN,
    Embedding,
    IncompatibleBackendError,
    get_backend,
    hookimpl,
    list_backends,
    register_plugin,
    unregister_plugin,
    use_backend,
)
from grapheme_core import registry as registry_module
from grapheme_core.registry import Registry, resolve_name


# -- helpers -----------------------------------------------------------------------------
class FakeDists:
    """Writes fake installed distributions into one directory on ``sys.path``."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.monkeypatch = monkeypatch
        self.tag = uuid.uuid4().hex[:8]  # unique module names: nothing leaks between tests
        self.modules: list[str] = []
        monkeypatch.syspath_prepend(str(root))

    def module(self, stem: str, source: str) -> str:
        name = f"grapheme_test_{stem}_{self.tag}"
        (self.root / f"{name}.py").write_text(textwrap.dedent(source))
        self.modules.append(name)
        return name

    def dist(self, dist_name: str, entry_points: dict[str, str]) -> None:
        info = self.root / f"{dist_name}_{self.tag}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist_name}-{self.tag}\nVersion: 0.1\n"
        )
        lines = [f"{k} = {v}" for k, v in entry_points.items()]
        (info / "entry_points.txt").write_text("[grapheme.backends]\n" + "\n".join(lines) + "\n")

    def plugin(self, stem: str, specs_source: str) -> str:
        """A plugin module whose hook returns ``specs_source`` (a Python expression)."""
        return self.module(
            stem,
            f"""
            from grapheme_core import BackendSpec, hookimpl

            @hookimpl
            def grapheme_backends():
                return {specs_source}
            """,
        )

    def cleanup(self) -> None:
        for name in self.modules:
            sys.modules.pop(name, None)


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = tmp_path / "site"
    root.mkdir()
    dists = FakeDists(root, monkeypatch)
    yield dists
    dists.cleanup()


def _plugin(*specs: BackendSpec):
    """A plugin object (not a module) for ``register_plugin``."""

    class Plugin:
        @staticmethod
        @hookimpl
        def grapheme_backends():
            return list(specs)

    return Plugin()


class NamedNumpy(NumpyBackend):
    def __init__(self, name: str = "named") -> None:
        self.name = name


def _row(reg: Registry, name: str):
    rows = {r.name: r for r in reg.list()}
    assert name in rows, f"{name!r} not listed; rows: {sorted(rows)}"
    return rows[name]


# -- bad plugins ---------------------------------------------------------------------------
def test_plugin_whose_import_raises_is_broken_and_numpy_still_works(fake):
    mod = fake.module("exploding", "raise RuntimeError('boom at import time')\n")
    fake.dist("exploding-plugin", {"exploding": mod})
    reg = Registry()
    row = _row(reg, "exploding")
    assert row.status == "broken"
    assert "RuntimeError: boom at import time" in row.detail
    assert mod in row.detail  # names what failed to import
    # the others are untouched
    assert _row(reg, "numpy").status == "available"
    backend = reg.get("numpy")
    dag = DagNN(backend=backend, dtype="float64")
    x, y = dag.add_input(), dag.add_output()
    dag.add_edge(x, y, 2.0)
    np.testing.assert_allclose(dag.forward([[1.5]]), [[3.0]])
    with pytest.raises(BackendNotFoundError, match="boom at import time"):
        reg.get("exploding")


def test_plugin_whose_hook_raises_or_returns_garbage_is_broken(fake):
    raising = fake.module(
        "hookraises",
        """
        from grapheme_core import hookimpl

        @hookimpl
        def grapheme_backends():
            raise ValueError("hook exploded")
        """,
    )
    garbage = fake.plugin("garbage", "['not a spec']")
    fake.dist("bad-hooks", {"hookraises": raising, "garbage": garbage})
    reg = Registry()
    assert "ValueError: hook exploded" in _row(reg, "hookraises").detail
    assert "not BackendSpec" in _row(reg, "garbage").detail
    assert reg.get("numpy").name == "numpy"


def test_backend_whose_factory_fails_raises_load_error_naming_plugin_and_fix(fake):
    mod = fake.plugin(
        "badfactory",
        "[BackendSpec('lazyboom', 'grapheme_no_such_module_xyz:Backend', "
        "install_hint=\"pip install 'grapheme-lazyboom'\")]",
    )
    fake.dist("lazyboom-plugin", {"lazyboom": mod})
    reg = Registry()
    row = _row(reg, "lazyboom")  # found without importing anything: the module is missing
    assert row.status == "unavailable" and "grapheme_no_such_module_xyz" in row.detail
    with pytest.raises(BackendLoadError) as info:
        reg.get("lazyboom")
    msg = str(info.value)
    assert "lazyboom" in msg and "grapheme_no_such_module_xyz" in msg
    assert "pip install 'grapheme-lazyboom'" in msg
    assert reg.get("numpy").name == "numpy"


def test_api_major_mismatch_raises_incompatible_backend_error(fake):
    mod = fake.plugin(
        "future", "[BackendSpec('future', 'grapheme_backends.numpy_backend:NumpyBackend', '2.0')]"
    )
    fake.dist("future-plugin", {"futureplug": mod})
    reg = Registry()
    row = _row(reg, "future")
    assert row.status == "incompatible"
    with pytest.raises(IncompatibleBackendError) as info:
        reg.get("future")
    msg = str(info.value)
    assert "'future'" in msg and "'futureplug'" in msg  # backend and plugin
    assert "2.0" in msg and API_VERSION in msg  # both versions
    assert "upgrade the plugin" in msg  # the fix
    assert reg.get("numpy").name == "numpy"


def test_minor_version_difference_is_compatible_but_instance_major_is_checked():
    reg = Registry(entry_points=False)
    major = API_VERSION.split(".")[0]

    class Liar(NumpyBackend):
        api_version = "99.0"

    reg.register_plugin(
        _plugin(
            BackendSpec("minor", lambda: NamedNumpy("minor"), api_version=f"{major}.99"),
            BackendSpec("liar", Liar, api_version=API_VERSION),
        ),
        "versions",
    )
    assert reg.get("minor").name == "minor"
    with pytest.raises(IncompatibleBackendError, match=r"99\.0"):
        reg.get("liar")


def test_unknown_name_lists_installed_unavailable_with_extra_and_broken(fake, monkeypatch):
    broken = fake.module("broken", "import grapheme_definitely_not_installed_abc\n")
    missing = fake.plugin(
        "missing",
        "[BackendSpec('needs-lib', 'grapheme_nolib_xyz.backend:B', "
        "requires=('grapheme_nolib_xyz',), install_hint=\"pip install 'grapheme[nolib]'\")]",
    )
    fake.dist("mixed", {"brokenplug": broken, "missingplug": missing})
    # pretend torch is not installed: the built-in torch backend must name its extra
    real = registry_module._importable
    monkeypatch.setattr(registry_module, "_importable", lambda m: m != "torch" and real(m))
    reg = Registry()
    with pytest.raises(BackendNotFoundError) as info:
        reg.get("nosuchbackend")
    msg = str(info.value)
    assert "no backend named 'nosuchbackend'" in msg
    installed = msg.split("installed: ", 1)[1].split(".", 1)[0]
    assert "numpy" in installed.split(", ")
    assert "unavailable: " in msg
    assert "needs-lib (missing grapheme_nolib_xyz; pip install 'grapheme[nolib]')" in msg
    assert "torch (missing torch; pip install 'grapheme-dagnn[torch]')" in msg
    assert "broken: " in msg and "brokenplug" in msg
    assert "ModuleNotFoundError" in msg and "grapheme_definitely_not_installed_abc" in msg
    # an unavailable backend asked for by name says what to install
    with pytest.raises(BackendLoadError, match=r"pip install 'grapheme-dagnn\[torch\]'"):
        reg.get("torch")


def test_two_plugins_claiming_one_name_warn_and_the_first_wins(fake):
    first = fake.plugin(
        "twin_a",
        "[BackendSpec('twin', 'grapheme_backends.numpy_backend:NumpyBackend', "
        "description='from a')]",
    )
    second = fake.plugin(
        "twin_b", "[BackendSpec('twin', 'grapheme_no_such_module_xyz:B', description='from b')]"
    )
    usurper = fake.plugin(
        "usurper", "[BackendSpec('numpy', 'grapheme_no_such_module_xyz:B', description='fake')]"
    )
    fake.dist("twins", {"aaa_first": first, "zzz_second": second, "usurper": usurper})
    reg = Registry()
    with pytest.warns(RuntimeWarning) as record:
        rows = {r.name: r for r in reg.list()}
    messages = [str(w.message) for w in record]
    assert any("'twin'" in m and "'aaa_first'" in m and "'zzz_second'" in m for m in messages)
    assert any("'numpy'" in m and "'builtin'" in m and "'usurper'" in m for m in messages)
    assert rows["twin"].plugin == "aaa_first" and rows["twin"].description == "from a"
    assert reg.get("twin").name == "numpy"  # the first claimant's factory
    assert rows["numpy"].plugin == "builtin"  # built-ins load first
    assert type(reg.get("numpy")) is NumpyBackend


def test_programmatic_duplicates_warn_and_unregistering_hands_the_name_over():
    reg = Registry(entry_points=False)
    reg.register_plugin(_plugin(BackendSpec("dup", lambda: NamedNumpy("first"))), "p1")
    with pytest.warns(RuntimeWarning, match="using the first"):
        reg.register_plugin(_plugin(BackendSpec("dup", lambda: NamedNumpy("second"))), "p2")
    assert reg.get("dup").name == "first"
    reg.unregister_plugin("p1")
    assert reg.get("dup").name == "second"  # not the cached instance of p1
    reg.unregister_plugin("p2")
    with pytest.raises(BackendNotFoundError):
        reg.get("dup")


def test_registering_a_taken_plugin_name_is_refused_and_keeps_the_original():
    reg = Registry(entry_points=False)
    reg.register_plugin(_plugin(BackendSpec("orig", lambda: NamedNumpy("orig"))), "same")
    with pytest.raises(ValueError, match="already registered"):
        reg.register_plugin(_plugin(BackendSpec("other", NamedNumpy)), "same")
    assert reg.get("orig").name == "orig"
    assert [r.status for r in reg.list()] == ["available"]


def test_backend_spec_is_cheap_and_validated():
    spec = BackendSpec("x", "pkg.mod:Factory", requires="torch")
    assert spec.requires == ("torch",)  # a bare string is one module, not its letters
    with pytest.raises(ValueError, match="factory"):
        BackendSpec("x", "no-colon")
    with pytest.raises(ValueError):
        BackendSpec("bad name!", "pkg:F")


def test_instances_are_cached_per_name_and_options():
    reg = Registry(entry_points=False)
    calls = []

    def factory(**options):
        calls.append(options)
        return NamedNumpy("cached")

    reg.register_plugin(_plugin(BackendSpec("cached", factory)), "cacheplug")
    assert reg.get("cached") is reg.get("cached")
    assert reg.get("cached", flavour="x") is not reg.get("cached")
    assert calls == [{}, {"flavour": "x"}]


# -- selection -----------------------------------------------------------------------------
@pytest.fixture
def selectable(monkeypatch):
    monkeypatch.delenv("GRAPHEME_BACKEND", raising=False)
    name = f"selection-{uuid.uuid4().hex[:6]}"
    register_plugin(
        _plugin(
            BackendSpec("sel-a", lambda: NamedNumpy("sel-a")),
            BackendSpec("sel-b", lambda: NamedNumpy("sel-b")),
        ),
        name,
    )
    yield
    unregister_plugin(name)


def test_selection_default_is_numpy(selectable):
    assert resolve_name() == "numpy"
    assert DagNN().backend.name == "numpy"
    assert get_backend().name == "numpy"


def test_environment_variable_selects_the_backend(selectable, monkeypatch):
    monkeypatch.setenv("GRAPHEME_BACKEND", "sel-a")
    assert DagNN().backend.name == "sel-a"
    assert Embedding(8, 2).backend.name == "sel-a"
    assert DagNN(backend="sel-b").backend.name == "sel-b"  # explicit beats the environment


def test_use_backend_beats_environment_and_explicit_beats_use_backend(selectable, monkeypatch):
    monkeypatch.setenv("GRAPHEME_BACKEND", "sel-a")
    with use_backend("sel-b") as backend:
        assert backend.name == "sel-b"
        assert DagNN().backend.name == "sel-b"
        assert DagNN(backend="numpy").backend.name == "numpy"
        with use_backend("numpy"):
            assert DagNN().backend.name == "numpy"
        assert DagNN().backend.name == "sel-b"  # nested blocks restore
    assert DagNN().backend.name == "sel-a"


def test_use_backend_restores_after_an_exception_and_validates_on_entry(selectable):
    with pytest.raises(KeyError), use_backend("sel-a"):
        raise KeyError("inside")
    assert resolve_name() == "numpy"
    with pytest.raises(BackendNotFoundError, match="no backend named 'nope'"), use_backend("nope"):
        pass  # pragma: no cover - never entered
    assert resolve_name() == "numpy"


def test_unknown_name_from_the_environment_says_where_it_came_from(selectable, monkeypatch):
    monkeypatch.setenv("GRAPHEME_BACKEND", "not-a-backend")
    with pytest.raises(BackendNotFoundError, match=r"not-a-backend.*GRAPHEME_BACKEND"):
        DagNN()


def test_list_backends_reports_the_builtins():
    rows = {r.name: r for r in list_backends()}
    assert rows["numpy"].status == "available" and rows["numpy"].plugin == "builtin"
    for name in ("torch", "jax"):
        assert rows[name].plugin == "builtin"


# -- import hygiene ----------------------------------------------------------------------------
def test_import_grapheme_core_imports_neither_torch_nor_jax_and_is_silent(tmp_path):
    code = textwrap.dedent(
        """
        import json, sys
        import grapheme_core
        HEAVY = ('torch', 'jax', 'jaxlib')
        heavy = lambda: sorted(m for m in sys.modules if m.split('.')[0] in HEAVY)
        after_import = heavy()
        grapheme_core.list_backends()
        dag = grapheme_core.DagNN(backend='numpy')
        x, y = dag.add_input(), dag.add_output()
        dag.add_edge(x, y)
        dag.forward([[1.0]])
        sys.stderr.write(json.dumps({'import': after_import, 'numpy_path': heavy()}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""  # prints nothing
    seen = json.loads(proc.stderr)
    assert seen == {"import": [], "numpy_path": []}
    assert list(tmp_path.iterdir()) == []  # writes nothing

    bare = subprocess.run(
        [sys.executable, "-c", "import grapheme_core"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (bare.returncode, bare.stdout, bare.stderr) == (0, "", "")


def test_public_names_are_exported():
    for name in ("list_backends", "get_backend", "use_backend", "hookimpl", "BackendSpec"):
        assert hasattr(grapheme_core, name)


def test_unhashable_backend_options_are_a_clear_error():
    from grapheme_core import get_backend

    with pytest.raises(ValueError, match="must be hashable"):
        get_backend("numpy", device=["cpu"])
