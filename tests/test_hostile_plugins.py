"""Plugins cannot hijack or hang the registry (fake installed distributions on sys.path)."""

from __future__ import annotations

import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from grapheme_backends.numpy_backend import NumpyBackend
from grapheme_core import BackendLoadError, BackendSpec, DagNN, hookimpl
from grapheme_core.registry import Registry


class Site:
    """Throw-away distributions: a module plus a ``*.dist-info`` with entry points."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.tag = uuid.uuid4().hex[:8]
        monkeypatch.syspath_prepend(str(root))

    def dist(self, dist: str, entry: str, source: str) -> str:
        module = f"grapheme_hostile_{dist.replace('-', '_')}_{self.tag}"
        (self.root / f"{module}.py").write_text(textwrap.dedent(source))
        info = self.root / f"{dist}_{self.tag}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[grapheme.backends]\n{entry} = {module}\n")
        return module


@pytest.fixture()
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Site:
    root = tmp_path / "site"
    root.mkdir()
    return Site(root, monkeypatch)


IMPOSTOR = """
    from grapheme_backends.numpy_backend import NumpyBackend
    from grapheme_core import BackendSpec, hookimpl

    class Impostor(NumpyBackend):
        name = "numpy"
        impostor = True

    @hookimpl
    def grapheme_backends():
        return [BackendSpec(n, Impostor) for n in ("numpy", "torch", "jax")]
"""


def test_an_entry_point_named_builtin_cannot_replace_the_builtins(site: Site) -> None:
    site.dist("evil-dist", "builtin", IMPOSTOR)
    reg = Registry()
    with pytest.warns(RuntimeWarning, match="using the first"):
        rows = {r.name: r for r in reg.list()}
    assert rows["numpy"].plugin == "builtin"
    assert not getattr(reg.get("numpy"), "impostor", False)
    assert not any(r.startswith("builtin (") for r in rows)  # shadowed, not broken
    assert rows["torch"].plugin == "builtin"


def test_factory_returning_a_non_backend_is_a_load_error(site: Site) -> None:
    site.dist(
        "notabackend",
        "nab",
        """
        from grapheme_core import BackendSpec, hookimpl

        class Half:
            name = "half"
            def forward(self, *a): ...

        @hookimpl
        def grapheme_backends():
            return [BackendSpec("half", Half), BackendSpec("dict", lambda: {"name": "x"})]
        """,
    )
    reg = Registry()
    with pytest.raises(BackendLoadError, match=r"not a Backend \(no asarray"):
        reg.get("half")
    with pytest.raises(BackendLoadError, match="returned a dict, which is not a Backend"):
        reg.get("dict")


def test_plugin_calling_sys_exit_at_import_is_reported_broken(site: Site) -> None:
    site.dist("exiter", "exiter", "import sys\nsys.exit(3)\n")
    reg = Registry()
    rows = {r.name: r for r in reg.list()}
    assert rows["exiter"].status == "broken" and "SystemExit" in rows["exiter"].detail
    assert reg.get("numpy").name == "numpy"


def test_factory_calling_sys_exit_is_a_load_error() -> None:
    def exits() -> None:
        raise SystemExit(4)

    class Plugin:
        @staticmethod
        @hookimpl
        def grapheme_backends() -> list[BackendSpec]:
            return [BackendSpec("exits", exits)]

    reg = Registry(entry_points=False)
    reg.register_plugin(Plugin(), "p")
    with pytest.raises(BackendLoadError, match="SystemExit"):
        reg.get("exits")


def test_a_slow_factory_does_not_block_other_backends() -> None:
    started, release = threading.Event(), threading.Event()

    def slow() -> NumpyBackend:
        started.set()
        release.wait(10)
        return NumpyBackend()

    class Plugin:
        @staticmethod
        @hookimpl
        def grapheme_backends() -> list[BackendSpec]:
            return [BackendSpec("slow", slow), BackendSpec("fast", NumpyBackend)]

    reg = Registry(entry_points=False)
    reg.register_plugin(Plugin(), "p")
    worker = threading.Thread(target=reg.get, args=("slow",))
    worker.start()
    try:
        assert started.wait(10)
        t0 = time.perf_counter()
        got = []
        other = threading.Thread(target=lambda: got.append(reg.get("fast")))
        other.start()
        other.join(5)
        assert got and time.perf_counter() - t0 < 5  # not stuck behind the slow factory
        assert [r.name for r in reg.list()] == ["fast", "slow"]  # listing is not blocked
    finally:
        release.set()
        worker.join(10)
    assert reg.get("slow") is reg.get("slow")  # built once, then cached


def test_missing_factory_module_is_not_available_and_hint_is_never_bare() -> None:
    class Plugin:
        @staticmethod
        @hookimpl
        def grapheme_backends() -> list[BackendSpec]:
            return [
                BackendSpec("ghost", "grapheme_no_such_module_q:Backend"),
                BackendSpec("boom", lambda: 1 / 0),
            ]

    reg = Registry(entry_points=False)
    reg.register_plugin(Plugin(), "p")
    rows = {r.name: r for r in reg.list()}
    assert rows["ghost"].status == "unavailable"
    assert "grapheme_no_such_module_q" in rows["ghost"].detail
    with pytest.raises(BackendLoadError) as info:
        reg.get("boom")
    assert "pip install" not in str(info.value) and not str(info.value).endswith("; ")


def test_dagnn_on_numpy_still_works_after_hostile_registries(site: Site) -> None:
    site.dist("evil-dist", "builtin", IMPOSTOR)
    with pytest.warns(RuntimeWarning):
        backend = Registry().get("numpy")
    assert DagNN(backend=backend).backend is backend
