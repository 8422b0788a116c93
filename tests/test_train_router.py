"""CognitiveRouter: choice, alternatives, and every failure mode."""

from __future__ import annotations

import math

import attrs
import pytest

from grapheme_train import default_router
from grapheme_train.data import builtin_examples
from grapheme_train.errors import (
    LowConfidenceError,
    NoModulesError,
    NoSuitableModuleError,
    RoutingError,
)
from grapheme_train.inputs import CsvInput, ImageInput, Input, SequenceInput, TextInput
from grapheme_train.router import CognitiveRouter


@attrs.define
class Fixed:
    """A module that gives every input the same score and counts its calls."""

    name: str
    score: object
    calls: int = 0

    def can_handle(self, inp: Input) -> float:
        self.calls += 1
        return self.score  # type: ignore[return-value]


TEXT = TextInput("anything")


def test_picks_highest_and_lists_alternatives_best_first() -> None:
    router = CognitiveRouter(0.5, [Fixed("a", 0.6), Fixed("b", 0.9), Fixed("c", 0.0)])
    route = router.route(TEXT)
    assert route.name == "b"
    assert route.module is router.get("b")
    assert route.confidence == pytest.approx(0.9)
    assert [(c.name, c.confidence) for c in route.alternatives] == [("a", 0.6), ("c", 0.0)]
    assert all(m.calls == 1 for m in router.modules)  # type: ignore[attr-defined]


def test_tie_goes_to_first_registered() -> None:
    router = CognitiveRouter(0.5, [Fixed("first", 0.7), Fixed("second", 0.7)])
    assert router.route(TEXT).name == "first"
    router2 = CognitiveRouter(0.5, [Fixed("second", 0.7), Fixed("first", 0.7)])
    assert router2.route(TEXT).name == "second"


def test_no_modules() -> None:
    with pytest.raises(NoModulesError, match="no modules"):
        CognitiveRouter().route(TEXT)


def test_nothing_suitable_names_scores() -> None:
    router = CognitiveRouter(0.5, [Fixed("a", 0.0), Fixed("b", 0)])
    with pytest.raises(NoSuitableModuleError) as info:
        router.route(TEXT)
    assert "no module can handle text 'anything'" in str(info.value)
    assert info.value.scores == (("a", 0.0), ("b", 0.0))


def test_below_threshold() -> None:
    router = CognitiveRouter(0.8, [Fixed("a", 0.3), Fixed("b", 0.79)])
    with pytest.raises(LowConfidenceError) as info:
        router.route(TEXT)
    message = str(info.value)
    assert "'b'" in message and "0.79" in message and "0.80" in message
    assert info.value.scores == (("b", 0.79), ("a", 0.3))


def test_threshold_is_inclusive() -> None:
    assert CognitiveRouter(0.6, [Fixed("a", 0.6)]).route(TEXT).name == "a"
    assert CognitiveRouter(0.0, [Fixed("a", 0.01)]).route(TEXT).name == "a"


def test_all_routing_errors_share_a_base() -> None:
    for cls in (NoModulesError, NoSuitableModuleError, LowConfidenceError):
        assert issubclass(cls, RoutingError)


@pytest.mark.parametrize("bad", [math.nan, 1.5, -0.1, "high", None])
def test_invalid_confidence_is_loud(bad: object) -> None:
    router = CognitiveRouter(0.5, [Fixed("ok", 0.9), Fixed("broken", bad)])
    with pytest.raises(ValueError, match="broken"):
        router.route(TEXT)


def test_registration_rules() -> None:
    router = CognitiveRouter()
    module = Fixed("a", 0.9)
    assert router.register(module) is module
    with pytest.raises(ValueError, match="already registered"):
        router.register(Fixed("a", 0.1))
    with pytest.raises(TypeError):
        router.register(object())  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="registered: a"):
        router.get("zzz")
    assert [m.name for m in router.modules] == ["a"]


@pytest.mark.parametrize("threshold", [-0.1, 1.1, math.nan, "0.5"])
def test_invalid_threshold(threshold: object) -> None:
    with pytest.raises(ValueError):
        CognitiveRouter(threshold)  # type: ignore[arg-type]


# -- the default router on real inputs -------------------------------------------------


def test_builtin_examples_route_to_their_domain() -> None:
    router = default_router()
    for ex in builtin_examples():
        route = router.route(ex.input)
        assert route.name == ex.domain, ex
        assert route.confidence >= router.threshold
        assert len(route.alternatives) == 3


@pytest.mark.parametrize(
    ("inp", "domain"),
    [
        (TextInput("12 * (3 + 4)"), "math"),
        (TextInput("-7"), "math"),
        (TextInput("Where do penguins live?"), "text"),
        (TextInput("1, 2, 3, 4"), "timeseries"),
        (CsvInput("3,6,9"), "timeseries"),
        (SequenceInput([0.5, 0.25]), "timeseries"),
        (ImageInput(2, 2, [0, 1, 1, 0]), "vision"),
        (ImageInput(8, 3, [0.5] * 24), "vision"),
    ],
)
def test_default_routing(inp: Input, domain: str) -> None:
    assert default_router().route(inp).name == domain


def test_default_router_rejects_malformed_arithmetic() -> None:
    # Looks like arithmetic but does not parse: math 0.4, text 0.3 -> below 0.5.
    with pytest.raises(LowConfidenceError, match="'math'"):
        default_router().route(TextInput("2 + "))
    # The same text is accepted under a lower threshold, still by math.
    assert default_router(0.35).route(TextInput("2 + ")).name == "math"


def test_default_router_nothing_suitable_for_symbols() -> None:
    # Symbols only: not arithmetic, no letters -> text 0.3, others 0 -> too low.
    with pytest.raises(LowConfidenceError, match="'text'"):
        default_router().route(TextInput("#@!"))
