"""SnapStart hooks (globesms/aws/snapstart.py): what init built is dropped before the snapshot and after a restore."""

from __future__ import annotations

import ast
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

from globesms.accept import idempotency
from globesms.aws import clients, snapstart, wiring

ROOT = Path(__file__).resolve().parents[2]


class FakeRuntime:
    """Stands in for Lambda's `snapshot_restore_py`: keeps the hooks it is given."""

    def __init__(self) -> None:
        self.before: list[Any] = []
        self.after: list[Any] = []

    def register_before_snapshot(self, hook: Any) -> None:
        self.before.append(hook)

    def register_after_restore(self, hook: Any) -> None:
        self.after.append(hook)


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRuntime]:
    monkeypatch.setattr(snapstart, "_extra", [])
    monkeypatch.setenv("GLOBESMS_TABLE_NAME", "messages")
    fake = FakeRuntime()
    assert snapstart.register(idempotency.forget_layers, runtime=fake)
    yield fake
    snapstart.forget_process_state()  # leave no client or adapter built here to other tests


def test_both_hooks_are_registered(runtime: FakeRuntime) -> None:
    assert runtime.before == [snapstart.forget_process_state]
    assert runtime.after == [snapstart.forget_process_state]


def test_after_restore_drops_clients_adapters_secrets_and_the_idempotency_layer(runtime: FakeRuntime) -> None:
    client = clients.dynamodb()
    store = wiring.message_store()
    idempotency._once("idempotency", client)
    DEFAULT_PROVIDERS["secrets"] = SimpleNamespace(store={"receipt-token": "cached"})
    assert clients._client.cache_info().currsize == 1
    assert wiring.message_store.cache_info().currsize == 1
    assert idempotency._once.cache_info().currsize == 1

    (after_restore,) = runtime.after
    after_restore()

    assert clients._client.cache_info().currsize == 0
    assert wiring.message_store.cache_info().currsize == 0
    assert idempotency._once.cache_info().currsize == 0
    assert "secrets" not in DEFAULT_PROVIDERS
    assert clients.dynamodb() is not client  # built again on first use, with the restored environment's credentials
    assert wiring.message_store() is not store


def test_after_restore_reseeds_random(runtime: FakeRuntime) -> None:
    random.seed(20261204)
    from_snapshot = [random.random() for _ in range(4)]
    random.seed(20261204)  # the state every environment restored from one snapshot would share
    runtime.after[0]()
    assert [random.random() for _ in range(4)] != from_snapshot


def test_register_is_a_no_op_without_the_runtime_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapstart, "_extra", [])
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # import then raises ImportError
    assert snapstart.register() is False


@pytest.mark.parametrize("folder", ["send_api", "receipts"])
def test_the_snapstart_functions_register_the_hooks_at_import(folder: str) -> None:
    tree = ast.parse((ROOT / "functions" / folder / "app.py").read_text())
    calls = [
        node.value.func
        for node in tree.body
        if isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Attribute)
    ]
    assert any(isinstance(f.value, ast.Name) and (f.value.id, f.attr) == ("snapstart", "register") for f in calls)
