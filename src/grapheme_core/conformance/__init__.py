"""The backend conformance suite (shipped in the wheel); see docs/backends.md."""
