"""The dispatcher's provider client follows its secret: rebuilt when the settings change, and once at once when the
provider refuses the key."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from globesms.errors import ErrorCategory, ProviderError
from globesms.models.outbound import OutboundSms, ProviderName
from globesms.providers import ProviderClients, is_authentication_error
from tests.fakes import ScriptedProvider

AUTH_REFUSED = ProviderError(
    ErrorCategory.CONFIG, "InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404
)


class Secret:
    """What Powertools would return: `cached` until the cache expires or a read is forced, then `stored`."""

    def __init__(self, key: str) -> None:
        self.stored = key
        self.cached = key
        self.forced_reads = 0

    def environment(self, name: ProviderName, *, force: bool = False) -> Mapping[str, str]:
        if force:
            self.forced_reads += 1
            self.cached = self.stored
        return {"GLOBESMS_ALIYUN_ACCESS_KEY_ID": self.cached, "OTHER": "ignored"}


class KeyedProvider(ScriptedProvider):
    def __init__(self, key: str, valid: set[str]) -> None:
        super().__init__(name=ProviderName.ALIYUN, answer=lambda _m: None if key in valid else AUTH_REFUSED)
        self.key = key
        self.closed = False

    def close(self) -> None:
        self.closed = True


def messages(n: int) -> list[OutboundSms]:
    return [OutboundSms(message_id=f"B.{i:05d}", to=f"+8525123{i:04d}", text="x") for i in range(n)]


def clients(secret: Secret, valid: set[str], built: list[KeyedProvider], call_seconds: float = 0.0) -> ProviderClients:
    def build(name: ProviderName, env: Mapping[str, str]) -> Any:
        built.append(KeyedProvider(env["GLOBESMS_ALIYUN_ACCESS_KEY_ID"], valid))
        built[-1].longest_call_seconds = call_seconds
        return built[-1]

    return ProviderClients(ProviderName.ALIYUN, environment=secret.environment, build=build)


def test_the_client_is_rebuilt_when_the_secret_changes_and_kept_while_it_does_not() -> None:
    secret, built = Secret("key-1"), []
    provider_clients = clients(secret, {"key-1", "key-2"}, built)
    first = provider_clients.current().client
    assert provider_clients.current().client is first and len(built) == 1
    secret.stored = secret.cached = "key-2"  # the cache expired and the rotated secret was read
    second = provider_clients.current().client
    assert second is not first and second.key == "key-2"  # type: ignore[attr-defined]
    assert first.closed  # type: ignore[attr-defined]


def test_a_refused_key_reads_the_secret_again_and_resends_the_refused_calls_once() -> None:
    secret, built = Secret("revoked"), []
    provider = clients(secret, {"rotated"}, built).current()
    secret.stored = "rotated"  # rotated in Secrets Manager; the cached value is still the revoked key
    sent = messages(3)
    outcomes = provider.send(sent, plan=provider.plan(sent))
    assert [o.provider_message_id for o in outcomes] == [f"pm-{m.message_id}" for m in sent]
    assert secret.forced_reads == 1
    assert [len(call) for b in built for call in b.calls] == [3, 3]  # the refused call once more, no other


def test_without_a_new_key_the_refusal_stands_and_nothing_is_sent_again() -> None:
    secret, built = Secret("revoked"), []
    provider = clients(secret, {"rotated"}, built).current()
    outcomes = provider.send(messages(2))
    assert all(o.error == AUTH_REFUSED for o in outcomes)
    assert secret.forced_reads == 1 and len(built) == 1 and len(built[0].calls) == 1


def test_a_refused_call_is_sent_again_only_if_it_can_end_before_the_pack_s_calls_must_have_ended() -> None:
    """The rate-limited sending checked the first call's time alone: the call again (after the first one's answer
    and a read of the secret) could run past the dispatcher's invocation."""
    secret, built = Secret("revoked"), []
    provider_clients = clients(secret, {"rotated"}, built, call_seconds=13.0)
    secret.stored = "rotated"
    late = provider_clients.current(calls_end_by=time.time() + 5)
    outcomes = late.send(messages(2))
    assert all(o.error == AUTH_REFUSED for o in outcomes)  # the refusals stand
    assert len(built) == 2 and built[-1].calls == []  # rebuilt, not called
    assert provider_clients.current().client is built[-1]  # the next pack sends with the rotated key
    in_time = provider_clients.current(calls_end_by=time.time() + 60)
    assert all(o.error is None for o in in_time.send(messages(2)))


def test_only_authentication_refusals_count() -> None:
    assert is_authentication_error(AUTH_REFUSED)
    assert is_authentication_error(ProviderError(ErrorCategory.CONFIG, "AuthFailure.SecretIdNotFound"))
    assert is_authentication_error(ProviderError(ErrorCategory.CONFIG, "E000102", http_status=401))
    assert not is_authentication_error(ProviderError(ErrorCategory.CONFIG, "AMOUNT_NOT_ENOUGH", http_status=200))
    assert not is_authentication_error(ProviderError(ErrorCategory.RECIPIENT, "AuthFailure"))
    assert not is_authentication_error(None)
