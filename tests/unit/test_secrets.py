"""globesms.secrets.last_good_secret: the last good secret in force, and no read for a while after a failed one
where asked (the endpoints without an API key, whose pushes anyone can send)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from globesms.secrets import SecretRefused, SecretUnavailable, forget_stored_secrets, last_good_secret


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    forget_stored_secrets()
    yield
    forget_stored_secrets()


class Store:
    def __init__(self, value: Any = None) -> None:
        self.value, self.reads = value, 0

    def fetch(self, name: str) -> Any:
        self.reads += 1
        if self.value is None:
            raise LookupError("no such secret")
        return self.value


def checked(value: Any) -> str:
    if not isinstance(value, str):
        raise SecretRefused("must be a string")
    return value


def test_after_a_failed_read_the_secret_is_not_read_again_until_retry_after_has_passed() -> None:
    store, now = Store(), [100.0]

    def read() -> str:
        return last_good_secret("s", checked, fetch=store.fetch, retry_after=10.0, clock=lambda: now[0])

    for _ in range(50):  # a flood of pushes while the secret is missing: one read
        with pytest.raises(SecretUnavailable):
            read()
    assert store.reads == 1
    store.value = "good"
    now[0] += 9.9
    with pytest.raises(SecretUnavailable):
        read()
    assert store.reads == 1
    now[0] += 0.2
    assert read() == "good" and store.reads == 2
    store.value = 42  # an edit gone wrong: the last good one stays in force, and is not read again meanwhile
    assert [read() for _ in range(5)] == ["good"] * 5 and store.reads == 3
    now[0] += 10.0
    store.value = "better"
    assert read() == "better" and store.reads == 4


def test_without_retry_after_a_failed_read_is_read_again_at_the_next_call() -> None:
    store = Store()
    for _ in range(3):
        with pytest.raises(SecretUnavailable):
            last_good_secret("s", checked, fetch=store.fetch)
    assert store.reads == 3
