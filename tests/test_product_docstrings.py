"""Every public class, function, method and property of the two packages says what it is."""

from __future__ import annotations

import importlib
import inspect

import pytest


def _own_doc(value: object) -> str:
    if isinstance(value, staticmethod | classmethod):
        value = value.__func__
    if isinstance(value, property):
        value = value.fget
    return (getattr(value, "__doc__", None) or "").strip()


def _is_routine(value: object) -> bool:
    if isinstance(value, staticmethod | classmethod):
        value = value.__func__
    if isinstance(value, property):
        return True
    return inspect.isfunction(value)


def _documented_somewhere(cls: type, attr: str) -> bool:
    """The attribute has a docstring in the class or in the base it overrides (what
    ``help()`` then shows)."""
    return any(attr in vars(k) and _own_doc(vars(k)[attr]) for k in cls.__mro__)


def undocumented(package: str) -> list[str]:
    """Public names of ``package.__all__`` (and their public members) without a docstring."""
    module = importlib.import_module(package)
    missing = []
    for name in module.__all__:
        obj = getattr(module, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if not (obj.__doc__ or "").strip():
            missing.append(f"{package}.{name}")
        if not inspect.isclass(obj):
            continue
        for attr, value in vars(obj).items():
            if attr.startswith("_") or not _is_routine(value):
                continue
            if not _documented_somewhere(obj, attr):
                missing.append(f"{package}.{name}.{attr}")
    return missing


@pytest.mark.parametrize("package", ["grapheme_core", "grapheme_train"])
def test_public_api_has_docstrings(package: str) -> None:
    assert undocumented(package) == []


def test_help_of_zero_grad_is_a_docstring_not_a_source_comment() -> None:
    from grapheme_core import DagNN

    # without a docstring, help() falls back to the comment above the method
    assert (inspect.getdoc(DagNN.zero_grad) or "").startswith("Reset the accumulated gradients")
