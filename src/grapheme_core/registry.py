"""Backend discovery and selection.

Plugins come from the ``grapheme.backends`` entry points (built-ins included) or from
:func:`register_plugin`. A plugin that fails to import, or whose hook raises, is recorded
as *broken* and never stops the others from loading. Selection order:
explicit argument > innermost :func:`use_backend` > ``$GRAPHEME_BACKEND`` > ``numpy``.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import importlib.metadata
import importlib.util
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pluggy

from . import hookspecs
from .backend import API_VERSION, Backend
from .errors import BackendLoadError, BackendNotFoundError, GraphemeError, IncompatibleBackendError

DEFAULT_BACKEND = "numpy"
ENV_VAR = "GRAPHEME_BACKEND"


def _modules(value: Any) -> tuple[str, ...]:
    """``requires`` as a tuple of module names (a bare string is one module)."""
    if isinstance(value, str):
        return (value,) if value else ()
    return tuple(value)


def _factory_ok(_inst: Any, _attr: Any, value: Any) -> None:
    if not (callable(value) or (isinstance(value, str) and ":" in value)):
        raise ValueError(f"factory must be a callable or 'module:attr', got {value!r}")


@attrs.frozen
class BackendSpec:
    """What a plugin declares about one backend. Cheap: nothing heavy is imported."""

    name: str = attrs.field(validator=attrs.validators.matches_re(r"^[A-Za-z0-9_.\-]+$"))
    factory: str | Callable[..., Backend] = attrs.field(validator=_factory_ok)
    api_version: str = API_VERSION
    description: str = ""
    #: importable top-level modules the backend needs (checked without importing them)
    requires: tuple[str, ...] = attrs.field(default=(), converter=_modules)
    #: what to run when a requirement is missing
    install_hint: str = ""


@attrs.frozen
class BackendInfo:
    """One row of :func:`list_backends`."""

    name: str
    status: str  # "available" | "unavailable" | "broken" | "incompatible"
    plugin: str
    description: str = ""
    api_version: str = ""
    detail: str = ""  # the missing modules + install hint, or the error

    @property
    def available(self) -> bool:
        """Whether the backend can be loaded now (status ``available``)."""
        return self.status == "available"


@attrs.define
class _Entry:
    spec: BackendSpec
    plugin: str


class Registry:
    """All known backend plugins. One process-wide instance lives behind the functions below."""

    def __init__(self, entry_points: bool = True) -> None:
        self._lock = threading.RLock()
        self._use_entry_points = entry_points
        self._loaded = False
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._entries: dict[str, _Entry] = {}  # backend name -> the winning claim
        self._shadowed: list[_Entry] = []  # later claims of an already-claimed name
        self._broken: dict[str, str] = {}  # plugin name -> error
        self._instances: dict[tuple[str, tuple[tuple[str, Any], ...]], Backend] = {}
        self._building: dict[tuple[str, tuple[tuple[str, Any], ...]], threading.Lock] = {}

    # -- plugin loading --------------------------------------------------------------
    def _ensure_loaded(self) -> None:
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            if not self._use_entry_points:
                return
            # the real built-ins first (so they win name clashes), whatever other
            # distributions call their entry points; an impostor named "builtin" gets
            # its distribution's name attached and can only shadow, never replace
            points = sorted(
                importlib.metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP),
                key=lambda e: (not _is_builtin(e), e.name),
            )
            for ep in points:
                name = ep.name
                if name == "builtin" and not _is_builtin(ep):
                    dist = getattr(getattr(ep, "dist", None), "name", None) or ep.value
                    name = f"builtin ({dist})"
                try:
                    plugin = ep.load()
                except (Exception, SystemExit) as exc:  # a broken plugin must not stop others
                    self._broken[name] = f"import of {ep.value!r} failed: {_describe(exc)}"
                    continue
                self._register(plugin, name)

    def register_plugin(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin object programmatically (same path as entry points).

        ``ValueError`` if a plugin is already registered under ``name`` (unregister it
        first); a plugin whose hook fails is recorded as broken, like an entry point.
        """
        self._ensure_loaded()
        with self._lock:
            name = name or getattr(plugin, "__name__", repr(plugin))
            if self._pm.has_plugin(name) or name in self._broken:
                raise ValueError(
                    f"a grapheme plugin named {name!r} is already registered; "
                    "unregister_plugin() it first or choose another name"
                )
            self._register(plugin, name)

    def unregister_plugin(self, name: str) -> None:
        with self._lock:
            plugin = self._pm.get_plugin(name)
            if plugin is not None:
                self._pm.unregister(plugin)
            self._broken.pop(name, None)
            self._shadowed = [e for e in self._shadowed if e.plugin != name]
            released = [k for k, e in self._entries.items() if e.plugin == name]
            for key in released:
                del self._entries[key]
                successor = next((e for e in self._shadowed if e.spec.name == key), None)
                if successor is not None:  # the next plugin claiming the name takes over
                    self._shadowed.remove(successor)
                    self._entries[key] = successor
            self._instances = {k: v for k, v in self._instances.items() if k[0] not in released}

    def _register(self, plugin: object, name: str) -> None:
        if self._pm.has_plugin(name):  # e.g. two distributions with one entry-point name
            self._broken[f"{name} (duplicate)"] = (
                f"another plugin is already registered as {name!r}; this one was not loaded"
            )
            return
        try:
            self._pm.register(plugin, name=name)
            impls = [
                i for i in self._pm.hook.grapheme_backends.get_hookimpls() if i.plugin_name == name
            ]
            specs: list[BackendSpec] = []
            for impl in impls:
                result = impl.function()
                for spec in result or []:
                    if not isinstance(spec, BackendSpec):
                        raise TypeError(f"hook returned {type(spec).__name__}, not BackendSpec")
                    specs.append(spec)
        except (Exception, SystemExit) as exc:
            if self._pm.has_plugin(name):
                self._pm.unregister(name=name)
            self._broken[name] = f"plugin {name!r} failed to register: {_describe(exc)}"
            return
        for spec in specs:
            if spec.name in self._entries:
                first = self._entries[spec.name].plugin
                warnings.warn(
                    f"backend {spec.name!r} is provided by plugins {first!r} and {name!r}; "
                    f"using the first ({first!r})",
                    RuntimeWarning,
                    stacklevel=3,
                )
                self._shadowed.append(_Entry(spec, name))
                continue
            self._entries[spec.name] = _Entry(spec, name)

    # -- queries ---------------------------------------------------------------------
    def list(self) -> list[BackendInfo]:
        self._ensure_loaded()
        rows = []
        with self._lock:
            for name, entry in sorted(self._entries.items()):
                spec = entry.spec
                status, detail = "available", ""
                if not _compatible(spec.api_version):
                    status = "incompatible"
                    detail = _incompatible_message(spec, entry.plugin)
                else:
                    missing = [m for m in spec.requires if not _importable(m)]
                    factory_module = _factory_module(spec.factory)
                    if missing:
                        status = "unavailable"
                        detail = _join(f"missing {', '.join(missing)}", _hint(spec))
                    elif factory_module and not _importable(factory_module):
                        status = "unavailable"
                        detail = f"its factory module {factory_module!r} is not installed"
                rows.append(
                    BackendInfo(
                        name, status, entry.plugin, spec.description, spec.api_version, detail
                    )
                )
            for plugin, error in sorted(self._broken.items()):
                rows.append(BackendInfo(plugin, "broken", plugin, "", "", error))
        return rows

    def get(self, name: str | None = None, **options: Any) -> Backend:
        self._ensure_loaded()
        requested = name
        name = resolve_name(name)
        key = (name, tuple(sorted(options.items())))
        try:
            hash(key)
        except TypeError:
            raise ValueError(
                f"backend options must be hashable values (str, int, float, bool), got {options}"
            ) from None
        with self._lock:
            if key in self._instances:
                return self._instances[key]
            entry = self._entries.get(name)
            if entry is None:
                raise BackendNotFoundError(self._not_found_message(name, name_source(requested)))
            # one lock per backend and options: a slow factory blocks only its own callers
            building = self._building.setdefault(key, threading.Lock())
        with building:
            with self._lock:
                if key in self._instances:
                    return self._instances[key]
            backend = self._build(name, entry, options)
            with self._lock:
                if self._entries.get(name) is entry:  # not unregistered meanwhile
                    self._instances[key] = backend
            return backend

    def _build(self, name: str, entry: _Entry, options: dict[str, Any]) -> Backend:
        spec = entry.spec
        if not _compatible(spec.api_version):
            raise IncompatibleBackendError(_incompatible_message(spec, entry.plugin))
        missing = [m for m in spec.requires if not _importable(m)]
        if missing:
            raise BackendLoadError(
                _join(
                    f"backend {name!r} needs {', '.join(missing)}, which is not installed",
                    _hint(spec),
                )
            )
        try:
            factory = _resolve_factory(spec.factory)
            backend = factory(**options)
        except GraphemeError:
            raise  # the plugin already said precisely what is wrong (e.g. no such device)
        except (TypeError, ValueError) as exc:
            if options:
                raise ValueError(f"backend {name!r} rejected options {options}: {exc}") from exc
            raise BackendLoadError(
                f"backend {name!r} (plugin {entry.plugin!r}) failed to load: {_describe(exc)}"
            ) from exc
        except (Exception, SystemExit) as exc:
            raise BackendLoadError(
                _join(
                    f"backend {name!r} (plugin {entry.plugin!r}) failed to load: {_describe(exc)}",
                    _hint(spec),
                )
            ) from exc
        lacking = [m for m in _REQUIRED if not callable(getattr(backend, m, None))]
        if lacking or not isinstance(getattr(backend, "name", None), str):
            raise BackendLoadError(
                f"backend {name!r} (plugin {entry.plugin!r}): its factory returned a "
                f"{type(backend).__name__}, which is not a Backend"
                + (f" (no {', '.join(lacking)})" if lacking else " (no name)")
            )
        declared = getattr(backend, "api_version", spec.api_version)
        if not _compatible(declared):
            raise IncompatibleBackendError(
                _incompatible_message(attrs.evolve(spec, api_version=declared), entry.plugin)
            )
        return backend

    def _not_found_message(self, name: str, source: str | None = None) -> str:
        rows = self.list()
        parts = [
            f"no backend named {name!r}" + (f" (the name came from {source})." if source else ".")
        ]
        for status, label in (
            ("available", "installed"),
            ("unavailable", "unavailable"),
            ("incompatible", "incompatible"),
            ("broken", "broken"),
        ):
            group = [r for r in rows if r.status == status]
            if group:
                if status == "available":
                    items = ", ".join(r.name for r in group)
                else:
                    items = "; ".join(f"{r.name} ({r.detail})" for r in group)
                parts.append(f"{label}: {items}.")
        parts.append("Run `grapheme-train backends` for details.")
        return " ".join(parts)


# -- process-wide registry and the public functions -----------------------------------
_REGISTRY = Registry()
# the innermost use_backend(): a name, or a Backend instance given to use_backend()
_CONTEXT: contextvars.ContextVar[str | Backend | None] = contextvars.ContextVar(
    "grapheme_backend", default=None
)


def _context_name() -> str | None:
    current = _CONTEXT.get()
    if current is None or isinstance(current, str):
        return current
    return getattr(current, "name", None)


def registry() -> Registry:
    return _REGISTRY


def resolve_name(name: str | None = None) -> str:
    """The backend name in effect: argument > use_backend > $GRAPHEME_BACKEND > numpy."""
    if name:
        return name
    return _context_name() or os.environ.get(ENV_VAR) or DEFAULT_BACKEND


def name_source(name: str | None = None) -> str | None:
    """Where :func:`resolve_name` takes the name from: ``None`` (the argument or the
    default), ``"use_backend()"`` or ``"$GRAPHEME_BACKEND"``."""
    if name:
        return None
    if _context_name():
        return "use_backend()"
    if os.environ.get(ENV_VAR):
        return f"${ENV_VAR}"
    return None


def list_backends() -> list[BackendInfo]:
    """Every backend known to the installed plugins, with its status."""
    return _REGISTRY.list()


def get_backend(name: str | Backend | None = None, **options: Any) -> Backend:
    """A backend instance by name (instances are cached per name and options)."""
    if name is not None and not isinstance(name, str):
        return name
    if not name and not options:
        current = _CONTEXT.get()
        if current is not None and not isinstance(current, str):
            return current  # the instance given to the innermost use_backend()
    return _REGISTRY.get(name, **options)


def register_plugin(plugin: object, name: str | None = None) -> None:
    """Register a plugin without an entry point (tests, notebooks)."""
    _REGISTRY.register_plugin(plugin, name)


def unregister_plugin(name: str) -> None:
    """Remove the plugin registered as ``name`` and the backends it provided (a backend
    another plugin also claimed passes to that plugin).
    """
    _REGISTRY.unregister_plugin(name)


@contextlib.contextmanager
def use_backend(name: str | Backend) -> Iterator[Backend]:
    """Make ``name`` (or a Backend instance) the default backend inside the ``with``
    block (validated on entry)."""
    backend = get_backend(name)
    token = _CONTEXT.set(name if isinstance(name, str) else backend)
    try:
        yield backend
    finally:
        _CONTEXT.reset(token)


# -- helpers ---------------------------------------------------------------------------
def _major(version: str) -> str:
    return str(version).split(".", 1)[0]


def _compatible(version: str) -> bool:
    return _major(version) == _major(API_VERSION)


def _incompatible_message(spec: BackendSpec, plugin: str) -> str:
    return (
        f"backend {spec.name!r} from plugin {plugin!r} implements kernel API "
        f"{spec.api_version}, but this grapheme speaks {API_VERSION} (major versions must "
        f"match); upgrade the plugin, or install a grapheme release with API "
        f"{_major(spec.api_version)}.x"
    )


def _hint(spec: BackendSpec) -> str:
    """What to install; empty when the plugin names nothing (no bare ``pip install``)."""
    if spec.install_hint:
        return spec.install_hint
    return f"install the packages: pip install {' '.join(spec.requires)}" if spec.requires else ""


def _join(message: str, hint: str) -> str:
    return f"{message}; {hint}" if hint else message


_REQUIRED = (
    "asarray", "to_numpy", "zeros", "concat", "take", "add", "scale", "sum_squares",
    "compile", "forward", "backward", "sgd_step", "adam_step", "gather_rows",
    "scatter_add_rows",
)  # fmt: skip
"""The kernel API 1.x methods a factory's result must have to count as a Backend."""


def _is_builtin(ep: importlib.metadata.EntryPoint) -> bool:
    """Whether ``ep`` is grapheme's own built-in plugin (by the module it loads)."""
    return ep.name == "builtin" and ep.value.split(":", 1)[0] == "grapheme_backends.plugin"


def _factory_module(factory: str | Callable[..., Backend]) -> str | None:
    return None if callable(factory) else factory.partition(":")[0]


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _resolve_factory(factory: str | Callable[..., Backend]) -> Callable[..., Backend]:
    if callable(factory):
        return factory
    module_name, _, attr = factory.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
