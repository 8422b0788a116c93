"""Datasets: the built-in 20 examples, seeded held-out generators, JSONL files.

JSONL schema (one JSON object per non-blank line, UTF-8)::

    {"input": <input>, "answer": "<text>", "domain": "math|text|timeseries|vision"}

``input`` is a string (text), a list of numbers (sequence), ``{"csv": "1,2,3"}`` (CSV
numbers) or ``{"width": W, "height": H, "pixels": [W*H numbers in [0, 1], row-major]}``
(image). ``answer`` is a string (an integer is accepted and turned into its text).
``domain`` is optional: without it the router picks the module. Any other key is an
error. A malformed line raises :class:`DataError` reading ``file:line: reason``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from grapheme_core import limits
from grapheme_train.errors import DataError, GraphemeTrainError, InputError
from grapheme_train.inputs import CsvInput, ImageInput, Input, SequenceInput, TextInput, describe
from grapheme_train.mathparse import evaluate
from grapheme_train.modules import DOMAINS
from grapheme_train.router import CognitiveRouter

__all__ = [
    "BUILTIN_SIZE",
    "Example",
    "builtin_examples",
    "by_domain",
    "check_examples",
    "example_to_json",
    "fingerprint",
    "generate_math",
    "generate_text",
    "generate_timeseries",
    "generate_vision",
    "heldout_examples",
    "input_from_json",
    "load_jsonl",
    "resolve_examples",
    "route_examples",
]


@attrs.frozen
class Example:
    """One training example; ``source`` says where it came from (``file:line``)."""

    input: Input
    answer: str
    domain: str | None = attrs.field(default=None)
    source: str = "?"

    @domain.validator
    def _check_domain(self, _attr: attrs.Attribute, value: str | None) -> None:
        if value is not None and value not in DOMAINS:
            raise InputError(f"unknown domain {value!r} (expected one of {', '.join(DOMAINS)})")


# -- built-in dataset ----------------------------------------------------------------


def _image(rows: Sequence[str]) -> ImageInput:
    pixels = [float(ch) for row in rows for ch in row]
    return ImageInput(len(rows[0]), len(rows), pixels)


_VISION_PATTERNS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("0100", "0100", "0100", "0100"), "1"),  # vertical line in column 1
    (("0000", "1111", "0000", "0000"), "horizontal"),  # horizontal line in row 1
    (("0100", "1110", "0100", "0000"), "cross"),  # plus centred at row 1, col 1
    (("1111", "1001", "1001", "1111"), "square"),  # hollow square border
)

_MATH = (
    ("2 + 3", "5"),
    ("10 - 4", "6"),
    ("3 * 7", "21"),
    ("15 / 3", "5"),
    ("2 + 2 * 3", "8"),
    ("(1 + 2) * 4", "12"),
    ("100 - 50", "50"),
    ("8 * 8", "64"),
)
_TEXT = (
    ("How many legs cat have?", "Cat have 4 legs"),
    ("What color is sky?", "Sky is blue"),
    ("What animal says moo?", "Cow says moo"),
    ("What shape is ball?", "Ball is round"),
)
_SERIES = (
    ((1, 2, 3, 4, 5), "6"),
    ((2, 4, 6, 8, 10), "12"),
    ((1, 1, 2, 3, 5), "8"),
    ((10, 9, 8, 7, 6), "5"),
)

BUILTIN_SIZE = 20


def builtin_examples() -> tuple[Example, ...]:
    """The original mixed dataset: 8 math, 4 text, 4 time-series, 4 vision examples."""
    items: list[tuple[str, Input, str]] = []
    items += [("math", TextInput(q), a) for q, a in _MATH]
    items += [("text", TextInput(q), a) for q, a in _TEXT]
    items += [("timeseries", SequenceInput(v), a) for v, a in _SERIES]
    items += [("vision", _image(rows), a) for rows, a in _VISION_PATTERNS]
    return tuple(
        Example(inp, answer, domain, f"builtin:{i}")
        for i, (domain, inp, answer) in enumerate(items, start=1)
    )


def by_domain(examples: Iterable[Example]) -> dict[str, list[Example]]:
    """Group examples by (resolved) domain, in :data:`DOMAINS` order; unresolved is an error."""
    groups: dict[str, list[Example]] = {d: [] for d in DOMAINS}
    for ex in examples:
        if ex.domain is None:
            raise ValueError(f"{ex.source}: example has no domain; resolve_examples first")
        groups[ex.domain].append(ex)
    return groups


# -- held-out generators -------------------------------------------------------------


def generate_math(rng: np.random.Generator, count: int) -> list[Example]:
    """New arithmetic (2-3 operands, parentheses) with a whole answer in [0, 1000), unseen."""
    seen = {q.replace(" ", "") for q, _ in _MATH}
    out: list[Example] = []
    misses = 0
    while len(out) < count:
        if misses > 200_000:
            raise ValueError(
                f"only {len(out)} distinct expressions could be generated, {count} asked"
            )
        a, b, c = (int(v) for v in rng.integers(1, 21, size=3))
        op1, op2 = (str(o) for o in rng.choice(list("+-*/"), size=2))
        form = int(rng.integers(0, 3))
        text = (f"{a} {op1} {b}", f"{a} {op1} {b} {op2} {c}", f"({a} {op1} {b}) {op2} {c}")[form]
        try:
            value = evaluate(text)
        except GraphemeTrainError:
            continue
        if value.denominator != 1 or not 0 <= value < 1000 or text.replace(" ", "") in seen:
            misses += 1
            continue
        seen.add(text.replace(" ", ""))
        out.append(Example(TextInput(text), str(value.numerator), "math"))
    return out


def _series(kind: int, rng: np.random.Generator) -> list[int]:
    if kind == 0:  # arithmetic progression
        start, step = int(rng.integers(-10, 21)), int(rng.choice([-5, -4, -3, -2, -1, 1, 2, 3]))
        return [start + step * i for i in range(6)]
    if kind == 1:  # geometric
        start, ratio = int(rng.integers(1, 6)), int(rng.integers(2, 4))
        return [start * ratio**i for i in range(6)]
    a, b = (int(v) for v in rng.integers(1, 6, size=2))  # Fibonacci-like
    seq = [a, b]
    while len(seq) < 6:
        seq.append(seq[-1] + seq[-2])
    return seq


def generate_timeseries(rng: np.random.Generator, count: int) -> list[Example]:
    """New progressions (arithmetic, geometric, Fibonacci-like) of 5 values plus the next."""
    seen = {tuple(v) for v, _ in _SERIES}
    out: list[Example] = []
    misses = 0
    while len(out) < count:
        if misses > 20_000:  # the generator has run out of distinct progressions
            raise ValueError(
                f"only {len(out)} distinct progressions could be generated, {count} asked; "
                "ask for fewer (the datasets in grapheme_train.datasets cap instead)"
            )
        seq = _series(int(rng.integers(0, 3)), rng)
        if tuple(seq[:5]) in seen:
            misses += 1
            continue
        seen.add(tuple(seq[:5]))
        out.append(Example(SequenceInput(seq[:5]), str(seq[5]), "timeseries"))
    return out


def _typo(text: str, rng: np.random.Generator) -> str:
    letters = [i for i, ch in enumerate(text) if ch.isalpha()]
    i = int(rng.choice(letters))
    kind = int(rng.integers(0, 4))
    if kind == 0:
        return text.lower()
    if kind == 1:
        return text[:i] + text[i] + text[i:]  # doubled letter
    if kind == 2 and i + 1 < len(text):
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]  # swapped letters
    return text.rstrip("?")


def generate_text(rng: np.random.Generator, count: int) -> list[Example]:
    """Noisy versions of the training questions (case, typos, missing '?'), same answers."""
    out: list[Example] = []
    while len(out) < count:
        question, answer = _TEXT[len(out) % len(_TEXT)]
        noisy = _typo(question, rng)
        if noisy == question:
            continue
        out.append(Example(TextInput(noisy), answer, "text"))
    return out


def generate_vision(rng: np.random.Generator, count: int, noise: float = 0.2) -> list[Example]:
    """The training patterns with Gaussian pixel noise (clipped to [0, 1]), same labels."""
    out: list[Example] = []
    for i in range(count):
        rows, label = _VISION_PATTERNS[i % len(_VISION_PATTERNS)]
        clean = np.array([[float(ch) for ch in row] for row in rows])
        noisy = np.clip(clean + rng.normal(0.0, noise, clean.shape), 0.0, 1.0)
        out.append(Example(ImageInput(4, 4, noisy.reshape(-1).tolist()), label, "vision"))
    return out


_GENERATORS: dict[str, Callable[[np.random.Generator, int], list[Example]]] = {
    "math": generate_math,
    "text": generate_text,
    "timeseries": generate_timeseries,
    "vision": generate_vision,
}


def heldout_examples(seed: int = 0, per_domain: int = 8) -> tuple[Example, ...]:
    """``per_domain`` generated examples per domain; the same seed gives the same set.

    Each domain draws from its own child of ``SeedSequence(seed)``, so the domains do
    not disturb each other.
    """
    if per_domain < 0:
        raise ValueError(f"per_domain must be >= 0, got {per_domain}")
    streams = np.random.SeedSequence(seed).spawn(len(DOMAINS))
    out: list[Example] = []
    for domain, stream in zip(DOMAINS, streams, strict=True):
        made = _GENERATORS[domain](np.random.default_rng(stream), per_domain)
        out += [attrs.evolve(ex, source=f"heldout:{domain}:{i}") for i, ex in enumerate(made, 1)]
    return tuple(out)


# -- JSONL ---------------------------------------------------------------------------

_KEYS = {"input", "answer", "domain"}


def input_from_json(value: Any) -> Input:
    """Build an input from its JSON form (see the module docstring); InputError if invalid."""
    if isinstance(value, str):
        return TextInput(value)
    if isinstance(value, list):
        return SequenceInput(value)
    if isinstance(value, dict):
        if set(value) == {"csv"}:
            return CsvInput(value["csv"])
        if set(value) == {"width", "height", "pixels"}:
            pixels = value["pixels"]
            if not isinstance(pixels, list):
                raise InputError("image pixels must be a list of numbers")
            return ImageInput(value["width"], value["height"], pixels)
        raise InputError(
            f"input object must have keys {{csv}} or {{width, height, pixels}}, "
            f"got {{{', '.join(sorted(value))}}}"
        )
    raise InputError(f"input must be a string, a list or an object, got {type(value).__name__}")


def _example_from_json(obj: Any) -> Example:
    if not isinstance(obj, dict):
        raise InputError(f"expected a JSON object, got {type(obj).__name__}")
    unknown = set(obj) - _KEYS
    if unknown:
        raise InputError(f"unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("input", "answer"):
        if key not in obj:
            raise InputError(f"missing key {key!r}")
    answer = obj["answer"]
    if isinstance(answer, int) and not isinstance(answer, bool):
        answer = str(answer)
    if not isinstance(answer, str) or not answer:
        raise InputError(f"answer must be a non-empty string, got {obj['answer']!r}")
    domain = obj.get("domain")
    if domain is not None and not isinstance(domain, str):
        raise InputError(f"domain must be a string, got {domain!r}")
    return Example(input_from_json(obj["input"]), answer, domain)


def _read_limited(path: Path) -> list[bytes]:
    """The file's lines, read within the ``data_line_bytes``/``data_file_bytes`` limits (so
    ``/dev/zero`` or a 1 GB line fails at once instead of filling the memory)."""
    line_limit, file_limit = limits.get("data_line_bytes"), limits.get("data_file_bytes")
    lines: list[bytes] = []
    total = 0
    try:
        with path.open("rb") as fh:
            while line := fh.readline(line_limit + 2):
                total += len(line)
                content = line.rstrip(b"\r\n")
                if len(content) > line_limit:
                    raise DataError(f"{path}:{len(lines) + 1}", _over("data_line_bytes", "line"))
                if total > file_limit:
                    raise DataError(str(path), _over("data_file_bytes", "file"))
                lines.extend(content.splitlines() or [b""])
    except OSError as exc:
        raise DataError(str(path), f"cannot read: {exc.strerror or exc}") from None
    return lines


def _over(name: str, what: str) -> str:
    return (
        f"{what} longer than the limit {name}={limits.get(name)} bytes; raise it with "
        f"{limits.env_name(name)}=N if this is intended"
    )


def load_jsonl(path: str | os.PathLike[str]) -> tuple[Example, ...]:
    """Read examples from a JSONL file; the first bad line raises ``DataError``."""
    path = Path(path)
    raw = _read_limited(path)
    out: list[Example] = []
    for lineno, line in enumerate(raw, start=1):
        where = f"{path}:{lineno}"
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(where, f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
        if lineno == 1:
            text = text.removeprefix("\ufeff")  # a UTF-8 byte order mark, as some editors write
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(where, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
        except ValueError as exc:  # e.g. an integer beyond Python's int/str digit limit
            raise DataError(where, f"invalid JSON: {exc}") from None
        except RecursionError:
            raise DataError(where, "invalid JSON: nested too deeply") from None
        try:
            out.append(attrs.evolve(_example_from_json(obj), source=where))
        except InputError as exc:
            raise DataError(where, str(exc)) from None
    if not out:
        raise DataError(str(path), "contains no examples")
    return tuple(out)


def route_examples(examples: Iterable[Example], router: CognitiveRouter) -> tuple[Example, ...]:
    """Give every example a domain: its label, or else the router's choice.

    A labelled example must be acceptable to its module (confidence > 0). Failures
    raise ``DataError`` with the example's source; nothing is skipped.
    """
    out = []
    for ex in examples:
        try:
            domain = ex.domain if ex.domain is not None else router.route(ex.input).name
            module = router.get(domain)
        except (GraphemeTrainError, KeyError) as exc:
            reason = exc.args[0] if isinstance(exc, KeyError) else str(exc)
            raise DataError(ex.source, reason) from None
        if module.can_handle(ex.input) <= 0.0:
            raise DataError(ex.source, f"the {domain} module cannot handle {describe(ex.input)}")
        out.append(attrs.evolve(ex, domain=domain))
    return tuple(out)


def check_examples(examples: Iterable[Example], router: CognitiveRouter) -> None:
    """Check every (routed) example encodes and its answer fits (and, for math, is right)."""
    for ex in examples:
        if ex.domain is None:
            raise DataError(ex.source, "example has no domain; route it first")
        module = router.get(ex.domain)
        try:
            module.check_example(ex.input, ex.answer)  # type: ignore[attr-defined]
        except GraphemeTrainError as exc:
            raise DataError(ex.source, str(exc)) from None


def resolve_examples(examples: Iterable[Example], router: CognitiveRouter) -> tuple[Example, ...]:
    """:func:`route_examples` then :func:`check_examples`: trainable, before any training."""
    routed = route_examples(examples, router)
    check_examples(routed, router)
    return routed


def example_to_json(example: Example) -> dict[str, Any]:
    """The JSONL form of an example (inverse of the loader; ``source`` is dropped)."""
    inp = example.input
    value: Any
    if isinstance(inp, TextInput):
        value = inp.text
    elif isinstance(inp, SequenceInput):
        value = list(inp.values)
    elif isinstance(inp, CsvInput):
        value = {"csv": inp.text}
    else:
        value = {"width": inp.width, "height": inp.height, "pixels": list(inp.pixels)}
    out: dict[str, Any] = {"input": value, "answer": example.answer}
    if example.domain is not None:
        out["domain"] = example.domain
    return out


def fingerprint(examples: Iterable[Example]) -> str:
    """SHA-256 of the examples' content and order (to check a resume uses the same data)."""
    digest = hashlib.sha256()
    for ex in examples:
        digest.update(json.dumps(example_to_json(ex), sort_keys=True).encode())
        digest.update(b"\n")
    return digest.hexdigest()
