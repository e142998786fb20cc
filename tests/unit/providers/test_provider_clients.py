"""The dispatcher's provider client follows its secret: rebuilt when the settings change, and at once when the
provider refuses the key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from globesms.dispatch.sending import send_within_limits
from globesms.errors import ErrorCategory, ProviderError
from globesms.models.outbound import OutboundSms, ProviderName
from globesms.providers import CREDENTIALS_RENEWED, ProviderClients, is_authentication_error, provider_environment
from globesms.secrets import SecretRefused
from tests.fakes import MemoryRateLimiter, ScriptedProvider


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


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


def test_a_refused_key_reads_the_secret_again_and_hands_the_refused_recipients_back_for_a_retry() -> None:
    secret, built = Secret("revoked"), []
    provider_clients = clients(secret, {"rotated"}, built)
    provider = provider_clients.current()
    secret.stored = "rotated"  # rotated in Secrets Manager; the cached value is still the revoked key
    sent = messages(3)
    outcomes = provider.send(sent, plan=provider.plan(sent))
    assert [o.error for o in outcomes] == [CREDENTIALS_RENEWED] * 3  # RETRYABLE: back on the queue
    assert CREDENTIALS_RENEWED.category is ErrorCategory.RETRYABLE
    assert secret.forced_reads == 1
    assert [len(call) for b in built for call in b.calls] == [3]  # not sent again under the refused call's permit
    assert provider.client is built[-1] is provider_clients.current().client  # the retry goes with the new key
    assert all(o.error is None for o in provider_clients.current().send(sent))


def test_a_refused_call_is_never_sent_again_in_a_second_it_holds_no_permit_for() -> None:
    """The permit of the refused call was for the second it started in; the call's answer and a read of the secret
    later, that second may be over, and the next one's permits others' (the provider would see two calls where its
    limit is one a second). The recipients are planned again and take permits of their own."""
    clock = FakeClock(1_000.7)  # 0.7 s into second 1000: a call may still start
    seconds: list[int] = []

    class TimedProvider(KeyedProvider):
        def send(self, messages, *, plan=None):  # type: ignore[no-untyped-def]
            seconds.append(int(clock()))
            clock.now += 0.35  # the call's round trip: a call again would start in second 1001
            return super().send(messages, plan=plan)

    secret, built = Secret("revoked"), []

    def build(name: ProviderName, env: Mapping[str, str]) -> Any:
        built.append(TimedProvider(env["GLOBESMS_ALIYUN_ACCESS_KEY_ID"], {"rotated"}))
        return built[-1]

    secret.stored = "rotated"
    provider = ProviderClients(ProviderName.ALIYUN, environment=secret.environment, build=build).current()
    limiter = MemoryRateLimiter({"SendMessageToGlobe": 1})
    limited = send_within_limits(provider, messages(1), limiter, clock=clock, sleep=clock.sleep)
    # Each call in the second of a permit of its own: the refused one in 1000, the one with the new key in 1001.
    assert seconds == [1000, 1001]
    assert [second for second, _ in limiter.granted] == [1000, 1001]
    assert [o is not None and o.error is None for o in limited.outcomes] == [True]


def test_without_a_new_key_the_refusal_stands_and_nothing_is_sent_again() -> None:
    secret, built = Secret("revoked"), []
    provider = clients(secret, {"rotated"}, built).current()
    outcomes = provider.send(messages(2))
    assert all(o.error == AUTH_REFUSED for o in outcomes)
    assert secret.forced_reads == 1 and len(built) == 1 and len(built[0].calls) == 1


def test_a_secret_that_cannot_be_read_again_leaves_the_answers_standing() -> None:
    # Raised after the calls, the read's failure lost what the provider answered (a review): the pack's claim was
    # kept, and every recipient, the ones the provider took included, became an unknown outcome.
    def unreadable(name: ProviderName, *, force: bool = False) -> Mapping[str, str]:
        if force:
            raise RuntimeError("Secrets Manager: ThrottlingException")
        return {"GLOBESMS_ALIYUN_ACCESS_KEY_ID": "revoked"}

    provider = ScriptedProvider(
        name=ProviderName.ALIYUN, answer=lambda m: AUTH_REFUSED if m.message_id == "B.00001" else None
    )
    current = ProviderClients(ProviderName.ALIYUN, environment=unreadable, build=lambda _n, _e: provider).current()
    outcomes = current.send(messages(3))
    assert [o.error for o in outcomes] == [None, AUTH_REFUSED, None]
    assert [o.provider_message_id for o in outcomes] == ["pm-B.00000", None, "pm-B.00002"]


GOOD_SECRET = {"GLOBESMS_ALIYUN_ACCESS_KEY_ID": "LTAI5tLocalGlobesms", "GLOBESMS_ALIYUN_ACCESS_KEY_SECRET": "local"}
SECRET_NAMED = {"GLOBESMS_ALIYUN_SECRET_NAME": "globesms/aliyun"}


@pytest.mark.parametrize(
    "broken",
    [
        {"GLOBESMS_ALIYUN_ACCESS_KEY_ID": "LTAI5tLocalGlobesms"},  # the key's secret left out of an edit
        {**GOOD_SECRET, "GLOBESMS_ALIYUN_ACCESS_KEY_SECRET": None},  # null was read as the text "None"
        ["not", "an", "object"],
        RuntimeError("GetParameterError: ThrottlingException"),
    ],
)
def test_a_credentials_secret_that_breaks_keeps_the_last_good_client(broken: object) -> None:
    # Every pack failed to build its client until the secret was mended (a review): bad settings keep the last good.
    stored: list[object] = [GOOD_SECRET, broken]

    def read(_name: str) -> object:
        if isinstance(stored[0], Exception):
            raise stored[0]
        return stored[0]

    def environment(name: ProviderName, *, force: bool = False) -> Mapping[str, str]:
        return provider_environment(name, SECRET_NAMED, read=read)

    clients = ProviderClients(ProviderName.ALIYUN, environment=environment)
    first = clients.current().client
    stored.pop(0)
    assert clients.current().client is first
    assert clients.refreshed(first) is None  # after a refused key: nothing new to try, the refusal stands


def test_a_number_in_a_credentials_secret_is_read_as_its_digits() -> None:
    # An SdkAppId stored as a JSON number was read before the values had a rule, and must still be (a review).
    secret = {"GLOBESMS_TENCENT_SDK_APP_ID": 1400000000, "GLOBESMS_TENCENT_SECRET_ID": "AKID"}
    env = provider_environment(ProviderName.TENCENT, {"GLOBESMS_TENCENT_SECRET_NAME": "t"}, read=lambda _n: secret)
    assert env["GLOBESMS_TENCENT_SDK_APP_ID"] == "1400000000"


@pytest.mark.parametrize("value", [None, True, ["k"], {"k": "v"}])
def test_a_credentials_secret_value_that_is_no_string_or_number_is_refused(value: object) -> None:
    with pytest.raises(SecretRefused, match="GLOBESMS_ALIYUN_ACCESS_KEY_ID must be a string or a number"):
        provider_environment(
            ProviderName.ALIYUN, SECRET_NAMED, read=lambda _n: {"GLOBESMS_ALIYUN_ACCESS_KEY_ID": value}
        )


def test_a_credentials_secret_that_breaks_before_any_good_one_fails_the_pack() -> None:
    def environment(name: ProviderName, *, force: bool = False) -> Mapping[str, str]:
        return provider_environment(name, SECRET_NAMED, read=lambda _name: {"GLOBESMS_ALIYUN_ACCESS_KEY_ID": None})

    with pytest.raises(SecretRefused, match="GLOBESMS_ALIYUN_ACCESS_KEY_ID must be a string or a number"):
        ProviderClients(ProviderName.ALIYUN, environment=environment).current()


def test_only_authentication_refusals_count() -> None:
    assert is_authentication_error(AUTH_REFUSED)
    assert is_authentication_error(ProviderError(ErrorCategory.CONFIG, "AuthFailure.SecretIdNotFound"))
    assert is_authentication_error(ProviderError(ErrorCategory.CONFIG, "E000102", http_status=401))
    assert not is_authentication_error(ProviderError(ErrorCategory.CONFIG, "AMOUNT_NOT_ENOUGH", http_status=200))
    assert not is_authentication_error(ProviderError(ErrorCategory.RECIPIENT, "AuthFailure"))
    assert not is_authentication_error(None)
