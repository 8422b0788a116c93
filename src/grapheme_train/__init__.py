"""grapheme_train: router, domain brains, SharedAGIModel, datasets, trainer and CLI."""

from __future__ import annotations

from grapheme_train.codec import AnswerCodec, CharSlots
from grapheme_train.data import Example, builtin_examples, heldout_examples, load_jsonl
from grapheme_train.errors import (
    DataError,
    EncodingError,
    GraphemeTrainError,
    InputError,
    LowConfidenceError,
    NoModulesError,
    NoSuitableModuleError,
    RoutingError,
)
from grapheme_train.inputs import CsvInput, ImageInput, Input, SequenceInput, TextInput
from grapheme_train.mathparse import (
    MathError,
    MathOverflowError,
    MathSyntaxError,
    MathZeroDivisionError,
)
from grapheme_train.model import ModelConfig, SharedAGIModel
from grapheme_train.modules import (
    DOMAINS,
    DomainModule,
    MathModule,
    TextModule,
    TimeSeriesModule,
    VisionModule,
    default_modules,
)
from grapheme_train.router import CognitiveRouter, Route
from grapheme_train.trainer import DomainScore, EpochRecord, NonFiniteLossError, Trainer

__all__ = [
    "DOMAINS",
    "AnswerCodec",
    "CharSlots",
    "CognitiveRouter",
    "CsvInput",
    "DataError",
    "DomainModule",
    "DomainScore",
    "EncodingError",
    "EpochRecord",
    "Example",
    "GraphemeTrainError",
    "ImageInput",
    "Input",
    "InputError",
    "LowConfidenceError",
    "MathError",
    "MathModule",
    "MathOverflowError",
    "MathSyntaxError",
    "MathZeroDivisionError",
    "ModelConfig",
    "NoModulesError",
    "NoSuitableModuleError",
    "NonFiniteLossError",
    "Route",
    "RoutingError",
    "SequenceInput",
    "SharedAGIModel",
    "TextInput",
    "TextModule",
    "TimeSeriesModule",
    "Trainer",
    "VisionModule",
    "builtin_examples",
    "default_modules",
    "default_router",
    "heldout_examples",
    "load_jsonl",
]


def default_router(threshold: float = 0.5) -> CognitiveRouter:
    """A router with the four built-in modules registered."""
    return CognitiveRouter(threshold, default_modules())
