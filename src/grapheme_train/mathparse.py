"""A safe arithmetic parser and evaluator (never ``eval``).

Grammar (usual precedence, left associative)::

    expr    := term (('+' | '-') term)*
    term    := unary (('*' | '/') unary)*
    unary   := ('-' | '+') unary | primary
    primary := NUMBER | '(' expr ')'
    NUMBER  := digits ['.' digits] | '.' digits

Evaluation is exact (``fractions.Fraction``). Errors carry the 0-based character
``position`` where they occurred: :class:`MathSyntaxError` for malformed text (a
number literal of more than ``MAX_DIGITS`` digits included),
:class:`MathZeroDivisionError` for a division by zero and :class:`MathOverflowError`
when an intermediate value grows beyond ``MAX_DIGITS`` digits.
"""

from __future__ import annotations

from fractions import Fraction

import attrs

from grapheme_train.errors import GraphemeTrainError

__all__ = [
    "BinaryOp",
    "MathError",
    "MathOverflowError",
    "MathSyntaxError",
    "MathZeroDivisionError",
    "Node",
    "Number",
    "UnaryOp",
    "evaluate",
    "format_number",
    "parse",
]

MAX_LENGTH = 10_000
MAX_DEPTH = 200
MAX_DIGITS = 4000
"""Most digits in a number literal, and in any intermediate value (numerator or
denominator); below Python's default limit on int <-> str conversion (4300 digits)."""
_DIGITS_LIMIT = 10**MAX_DIGITS


class MathError(GraphemeTrainError, ValueError):
    """An arithmetic expression could not be parsed or evaluated."""

    def __init__(self, reason: str, position: int, expression: str = "") -> None:
        super().__init__(f"{reason} at position {position}")
        self.reason = reason
        self.position = position
        self.expression = expression


class MathSyntaxError(MathError):
    """The expression is not valid arithmetic."""


class MathZeroDivisionError(MathError):
    """The expression divides by zero."""


class MathOverflowError(MathError):
    """A value of the expression has more than ``MAX_DIGITS`` digits."""


@attrs.frozen
class Number:
    value: Fraction
    position: int


@attrs.frozen
class UnaryOp:
    op: str
    operand: Node
    position: int


@attrs.frozen
class BinaryOp:
    op: str
    left: Node
    right: Node
    position: int


Node = Number | UnaryOp | BinaryOp


@attrs.frozen
class _Token:
    kind: str  # "num", "op", "(", ")", "end"
    text: str
    position: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "+-*/":
            tokens.append(_Token("op", ch, i))
            i += 1
        elif ch in "()":
            tokens.append(_Token(ch, ch, i))
            i += 1
        elif ch.isascii() and (ch.isdigit() or ch == "."):
            start = i
            while i < n and text[i].isascii() and text[i].isdigit():
                i += 1
            if i < n and text[i] == ".":
                i += 1
                frac_start = i
                while i < n and text[i].isascii() and text[i].isdigit():
                    i += 1
                if i == frac_start:
                    raise MathSyntaxError("expected digits after '.'", i, text)
            if i < n and text[i] == ".":
                raise MathSyntaxError("unexpected '.'", i, text)
            if i - start > MAX_DIGITS:
                raise MathSyntaxError(f"number longer than {MAX_DIGITS} digits", start, text)
            tokens.append(_Token("num", text[start:i], start))
        else:
            raise MathSyntaxError(f"unexpected character {ch!r}", i, text)
    tokens.append(_Token("end", "", n))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def fail(self, tok: _Token, expected: str) -> MathSyntaxError:
        found = "end of expression" if tok.kind == "end" else repr(tok.text)
        return MathSyntaxError(f"expected {expected}, found {found}", tok.position, self.text)

    def enter(self, tok: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise MathSyntaxError(
                f"expression nested deeper than {MAX_DEPTH}", tok.position, self.text
            )

    def expr(self) -> Node:
        node = self.term()
        while self.peek().kind == "op" and self.peek().text in "+-":
            tok = self.take()
            node = BinaryOp(tok.text, node, self.term(), tok.position)
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.peek().kind == "op" and self.peek().text in "*/":
            tok = self.take()
            node = BinaryOp(tok.text, node, self.unary(), tok.position)
        return node

    def unary(self) -> Node:
        tok = self.peek()
        if tok.kind == "op" and tok.text in "+-":
            self.take()
            self.enter(tok)
            node = UnaryOp(tok.text, self.unary(), tok.position)
            self.depth -= 1
            return node
        return self.primary()

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind == "num":
            return Number(Fraction(tok.text), tok.position)
        if tok.kind == "(":
            self.enter(tok)
            node = self.expr()
            close = self.take()
            if close.kind != ")":
                raise self.fail(close, "')'")
            self.depth -= 1
            return node
        raise self.fail(tok, "a number or '('")


def parse(text: str) -> Node:
    """Parse ``text`` into an expression tree; raise :class:`MathSyntaxError` if invalid."""
    if not isinstance(text, str):
        raise TypeError(f"expression must be a string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise MathSyntaxError(f"expression longer than {MAX_LENGTH} characters", MAX_LENGTH, text)
    if not text.strip():
        raise MathSyntaxError("empty expression", 0, text)
    parser = _Parser(text)
    node = parser.expr()
    tok = parser.peek()
    if tok.kind != "end":
        raise parser.fail(tok, "an operator or end of expression")
    return node


def _apply(op: str, left: Fraction, right: Fraction, node: BinaryOp, text: str) -> Fraction:
    if op == "+":
        result = left + right
    elif op == "-":
        result = left - right
    elif op == "*":
        result = left * right
    elif right == 0:
        raise MathZeroDivisionError("division by zero", node.position, text)
    else:
        result = left / right
    if abs(result.numerator) >= _DIGITS_LIMIT or result.denominator >= _DIGITS_LIMIT:
        raise MathOverflowError(
            f"intermediate value with more than {MAX_DIGITS} digits", node.position, text
        )
    return result


def _eval(root: Node, text: str) -> Fraction:
    # Iterative post-order walk: a long chain like 1+1+...+1 is a deep left spine.
    values: list[Fraction] = []
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, ready = stack.pop()
        if isinstance(node, Number):
            values.append(node.value)
        elif isinstance(node, UnaryOp):
            if ready:
                if node.op == "-":
                    values[-1] = -values[-1]
            else:
                stack += [(node, True), (node.operand, False)]
        elif ready:
            right = values.pop()
            values[-1] = _apply(node.op, values[-1], right, node, text)
        else:
            stack += [(node, True), (node.right, False), (node.left, False)]
    return values[0]


def evaluate(expression: str | Node) -> Fraction:
    """Evaluate an expression (text or parsed tree) exactly.

    Raises :class:`MathSyntaxError`, :class:`MathZeroDivisionError` or
    :class:`MathOverflowError`.
    """
    if isinstance(expression, str):
        return _eval(parse(expression), expression)
    return _eval(expression, "")


def format_number(value: Fraction | int | float, max_decimals: int = 6) -> str:
    """Canonical text of a number: integers without a point, others rounded.

    ``Fraction(10, 2) -> "5"``, ``Fraction(1, 3) -> "0.333333"``, ``-0.5 -> "-0.5"``.
    """
    value = Fraction(value)
    rounded = round(value, max_decimals)
    if rounded.denominator == 1:
        return str(rounded.numerator)
    sign = "-" if rounded < 0 else ""
    rounded = abs(rounded)
    whole, frac = divmod(rounded.numerator, rounded.denominator)
    digits = str(frac * 10**max_decimals // rounded.denominator).rjust(max_decimals, "0")
    return f"{sign}{whole}.{digits.rstrip('0')}"
