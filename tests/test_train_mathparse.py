"""The safe arithmetic parser: values, precedence, errors with positions."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from grapheme_train.errors import GraphemeTrainError
from grapheme_train.mathparse import (
    MAX_DEPTH,
    MathError,
    MathSyntaxError,
    MathZeroDivisionError,
    evaluate,
    format_number,
    parse,
)


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("2 + 3", "5"),
        ("10 - 4", "6"),
        ("3 * 7", "21"),
        ("15 / 3", "5"),
        ("2 + 2 * 3", "8"),
        ("(1 + 2) * 4", "12"),
        ("100 - 50", "50"),
        ("8 * 8", "64"),
    ],
)
def test_builtin_expressions(text: str, answer: str) -> None:
    assert format_number(evaluate(text)) == answer


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2 + 3 * 4", 14),
        ("2 * 3 + 4", 10),
        ("(2 + 3) * 4", 20),
        ("10 - 4 - 3", 3),  # left associative
        ("48 / 4 / 2", 6),
        ("2 * (3 + (4 - 1)) / 3", 4),
        ("-3 * -2", 6),
        ("--3", 3),
        ("-(1 + 2)", -3),
        ("2 * -3", -6),
        ("+5 - +2", 3),
        ("1 - -1", 2),
        ("1.5 * 2", 3),
        (".5 + .25", Fraction(3, 4)),
        ("1 / 3", Fraction(1, 3)),
        ("7 / -2", Fraction(-7, 2)),
        ("  12\t*\t2  ", 24),
    ],
)
def test_values_and_precedence(text: str, value: Fraction | int) -> None:
    assert evaluate(text) == value


def _random_expr(rng: np.random.Generator, depth: int) -> tuple[str, Fraction]:
    """A random expression and its value, computed independently of the parser."""
    if depth == 0 or rng.random() < 0.3:
        n = int(rng.integers(0, 50))
        return str(n), Fraction(n)
    kind = int(rng.integers(0, 6))
    left, lv = _random_expr(rng, depth - 1)
    if kind == 0:
        return f"-({left})", -lv
    if kind == 1:
        return f"({left})", lv
    right, rv = _random_expr(rng, depth - 1)
    op = "+-*/"[kind - 2]
    if op == "/" and rv == 0:
        op = "*"
    value = {"+": lv + rv, "-": lv - rv, "*": lv * rv, "/": lv / rv if rv else None}[op]
    return f"({left}) {op} ({right})", value


def test_random_expressions_match_fraction_arithmetic() -> None:
    rng = np.random.default_rng(1234)
    for _ in range(300):
        text, value = _random_expr(rng, 5)
        assert evaluate(text) == value, text


def test_precedence_without_parentheses_matches_manual_reduction() -> None:
    # a + b * c - d / e evaluated by hand with the usual rules.
    rng = np.random.default_rng(7)
    for _ in range(100):
        a, b, c, d, e = (int(v) for v in rng.integers(1, 30, size=5))
        expected = Fraction(a) + Fraction(b) * c - Fraction(d) / e
        assert evaluate(f"{a} + {b} * {c} - {d} / {e}") == expected


@pytest.mark.parametrize(
    ("text", "error", "position", "fragment"),
    [
        ("", MathSyntaxError, 0, "empty expression"),
        ("   ", MathSyntaxError, 0, "empty expression"),
        ("2 +", MathSyntaxError, 3, "end of expression"),
        ("(1 + 2", MathSyntaxError, 6, "expected ')'"),
        ("1 + 2)", MathSyntaxError, 5, "')'"),
        ("()", MathSyntaxError, 1, "a number or '('"),
        ("2 $ 3", MathSyntaxError, 2, "'$'"),
        ("1 2", MathSyntaxError, 2, "'2'"),
        ("2 * * 3", MathSyntaxError, 4, "'*'"),
        ("1..2", MathSyntaxError, 2, "digits after '.'"),
        ("1.2.3", MathSyntaxError, 3, "'.'"),
        ("__import__('os')", MathSyntaxError, 0, "'_'"),
        ("2 ** 3", MathSyntaxError, 3, "'*'"),
        ("1 / 0", MathZeroDivisionError, 2, "division by zero"),
        ("5 + 4 / (2 - 2)", MathZeroDivisionError, 6, "division by zero"),
        ("0 / 0", MathZeroDivisionError, 2, "division by zero"),
    ],
)
def test_errors_have_position(text: str, error: type, position: int, fragment: str) -> None:
    with pytest.raises(error) as info:
        evaluate(text)
    assert info.value.position == position
    assert fragment in str(info.value)
    assert str(info.value).endswith(f"at position {position}")


def test_error_types() -> None:
    assert issubclass(MathSyntaxError, MathError)
    assert issubclass(MathZeroDivisionError, MathError)
    assert issubclass(MathError, ValueError)
    assert issubclass(MathError, GraphemeTrainError)
    with pytest.raises(TypeError):
        parse(42)  # type: ignore[arg-type]


def test_parse_does_not_evaluate() -> None:
    tree = parse("1 / 0")  # syntactically fine
    with pytest.raises(MathZeroDivisionError):
        evaluate(tree)


def test_long_chain_does_not_hit_recursion_limit() -> None:
    assert evaluate(" + ".join(["1"] * 2000)) == 2000
    assert evaluate("*".join(["2"] * 200)) == 2**200


def test_nesting_limit() -> None:
    ok = "(" * (MAX_DEPTH - 1) + "7" + ")" * (MAX_DEPTH - 1)
    assert evaluate(ok) == 7
    with pytest.raises(MathSyntaxError, match="nested deeper"):
        evaluate("(" * (MAX_DEPTH + 5) + "7" + ")" * (MAX_DEPTH + 5))
    with pytest.raises(MathSyntaxError, match="nested deeper"):
        evaluate("-" * (MAX_DEPTH + 5) + "7")


def test_too_long_expression_is_rejected() -> None:
    with pytest.raises(MathSyntaxError, match="longer than"):
        evaluate("1" * 20_000)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Fraction(10, 2), "5"),
        (Fraction(-12), "-12"),
        (Fraction(1, 3), "0.333333"),
        (Fraction(-1, 2), "-0.5"),
        (Fraction(7, 4), "1.75"),
        (Fraction(1, 10**9), "0"),
        (Fraction(-1, 10**9), "0"),
        (2.5, "2.5"),
        (0, "0"),
    ],
)
def test_format_number(value: Fraction | float, text: str) -> None:
    assert format_number(value) == text
