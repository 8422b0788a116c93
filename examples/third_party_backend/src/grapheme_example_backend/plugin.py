"""The plugin object grapheme loads through the ``grapheme.backends`` entry point.

It must stay cheap: it only describes the backend. The ``factory`` string is resolved
(and the kernels imported) the first time someone asks for the ``example`` backend.
"""

from __future__ import annotations

from grapheme_core import BackendSpec, hookimpl


@hookimpl
def grapheme_backends() -> list[BackendSpec]:
    return [
        BackendSpec(
            name="example",
            factory="grapheme_example_backend.backend:ExampleBackend",
            api_version="1.0",  # the grapheme kernel API this plugin implements
            description="example third-party plugin: NumPy reference with column-sweep "
            "weight gradients and scipy expit",
            requires=("numpy", "scipy"),
            install_hint="pip install -e examples/third_party_backend",
        )
    ]
