"""The integration tests' moto stack and handler loader, plus a view of the stack that empties it between examples."""

from collections.abc import Callable
from types import ModuleType

import pytest
from hypothesis import core as hypothesis_core
from hypothesis.vendor import pretty
from schemathesis.generation import hypothesis as schemathesis_hypothesis

from tests.fuzz.harness import RECEIPT_TOKENS, FuzzStack
from tests.integration.conftest import MotoStack, load_handler, stack

# schemathesis (its pytest plugin, or the first use of its hypothesis support) swaps hypothesis' printer for one
# that prints nothing, to save time in its own runs: every falsifying example of every hypothesis test would then
# read `x=,`. Its setup runs once: run it now (it is a no-op when the plugin did) and put the printer back.
schemathesis_hypothesis.setup()
hypothesis_core.RepresentationPrinter = pretty.RepresentationPrinter  # type: ignore[misc]

__all__ = ["fuzz_stack", "intake", "load_handler", "receipts", "send_api", "stack"]  # the fixtures this folder uses


@pytest.fixture
def fuzz_stack(stack: MotoStack) -> FuzzStack:
    return FuzzStack(stack)


@pytest.fixture
def send_api(load_handler: Callable[..., ModuleType]) -> ModuleType:
    """The API handler, loaded once per test (not per example: an import per example would dominate the run)."""
    return load_handler("send_api")


@pytest.fixture
def intake(load_handler: Callable[..., ModuleType]) -> ModuleType:
    return load_handler("intake")


@pytest.fixture
def receipts(load_handler: Callable[..., ModuleType], monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    for provider, token in RECEIPT_TOKENS.items():
        monkeypatch.setenv(f"GLOBESMS_{provider.upper()}_RECEIPT_TOKEN", token)
    return load_handler("receipts")
