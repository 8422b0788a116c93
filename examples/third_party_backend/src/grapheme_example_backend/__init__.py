"""An example third-party grapheme backend: the NumPy reference with its own kernels.

Nothing heavy is imported here; grapheme imports :mod:`.plugin` through the entry point
and :mod:`.backend` only when the ``example`` backend is actually requested.
"""

__version__ = "0.1.0"
