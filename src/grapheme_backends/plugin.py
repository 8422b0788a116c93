"""Registers the built-in backends through the same hook any third-party plugin uses."""

from __future__ import annotations

from grapheme_core import BackendSpec, hookimpl
from grapheme_core.about import install_hint
from grapheme_core.backend import API_VERSION


@hookimpl
def grapheme_backends() -> list[BackendSpec]:
    return [
        BackendSpec(
            name="numpy",
            factory="grapheme_backends.numpy_backend:NumpyBackend",
            api_version=API_VERSION,
            description="NumPy + SciPy CSR reference backend",
            requires=("numpy", "scipy"),
        ),
        BackendSpec(
            name="torch",
            factory="grapheme_backends.torch_backend:TorchBackend",
            api_version=API_VERSION,
            description="PyTorch sparse kernels (cpu, cuda, cuda:N)",
            requires=("torch",),
            install_hint=install_hint("torch"),
        ),
        BackendSpec(
            name="jax",
            factory="grapheme_backends.jax_backend:JaxBackend",
            api_version=API_VERSION,
            description="JAX segment_sum kernels under jit",
            requires=("jax",),
            install_hint=install_hint("jax"),
        ),
    ]
