"""Failover (issue 5): recipients a provider did not take move to the next provider of their route, rendered for
it; recipients it may have taken never move; a circuit breaker moves whoever can go elsewhere without a call."""

from datetime import UTC, datetime, timedelta

import pytest

from globesms.dispatch.circuit_breaker import BreakerPolicy, PackHealth, pack_health
from globesms.dispatch.failover import content_for, next_provider
from globesms.dispatch.sending import INVALID_REQUEST
from globesms.dispatch.service import DispatchDeps, DispatchPolicies, RetryPack, dispatch_pack
from globesms.domain.status import Status
from globesms.errors import ErrorCategory, ProviderError
from globesms.models.content import MessageContent
from globesms.models.outbound import ProviderName, SendOutcome
from globesms.models.packs import DispatchPack
from tests.fakes import MemoryBreakers, MemoryClaims, MemoryQueues, MemoryStore, MemoryWebhooks, ScriptedProvider
from tests.samples import REGISTRY

A, T, H = ProviderName.ALIYUN, ProviderName.TENCENT, ProviderName.HUAWEI
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
CONFIG = ProviderError(ErrorCategory.CONFIG, "AuthFailure.SignatureFailure", "bad signature", 200)
DOWN = ProviderError(ErrorCategory.RETRYABLE, "InternalError", "oops", 500)


def template_pack(provider: ProviderName = T, route: tuple[ProviderName, ...] = (T, H, A), n: int = 3) -> DispatchPack:
    content = {
        "type": "OTP",
        "template_id": "1800308",
        "template_params": {"code": "123456", "minutes": "5"},
        "template_ref": "login",
        "route": list(route),
    }
    return DispatchPack.model_validate(
        {
            "pack_id": f"B:{provider}:0",
            "batch_id": "B",
            "provider": provider,
            "created_at": "2026-11-26T09:59:00.000000Z",
            "contents": [content],
            "recipients": [{"id": f"B.{i:05d}", "to": f"+8525123456{i}", "c": 0} for i in range(n)],
        }
    )


def run(pack: DispatchPack, provider: ScriptedProvider, **kw):  # type: ignore[no-untyped-def]
    store = kw.pop("store", MemoryStore())
    now, last_attempt = kw.pop("now", NOW), kw.pop("last_attempt", False)
    deps = DispatchDeps(
        provider=provider,
        store=store,
        claims=kw.pop("claims", MemoryClaims()),
        queues=kw.pop("queues", MemoryQueues()),
        receipts=store,
        webhooks=MemoryWebhooks(),
        templates=kw.pop("templates", REGISTRY),
        **kw,
    )
    return dispatch_pack(pack, deps, now=now, last_attempt=last_attempt)


def test_the_next_provider_is_the_one_after_the_current_in_the_route() -> None:
    content = MessageContent(type="OTP", route=(T, H, A))  # type: ignore[arg-type]
    assert [next_provider(content, p) for p in (T, H, A)] == [H, A, None]
    assert next_provider(MessageContent(type="OTP"), T) is None  # type: ignore[arg-type]


def test_a_registered_template_is_rendered_again_for_the_next_provider() -> None:
    content = template_pack().contents[0]
    huawei = content_for(content, H, REGISTRY)
    assert huawei is not None
    assert (huawei.template_id, list((huawei.template_params or {}).items())) == (
        "tplLogin",
        [("minutes", "5"), ("code", "123456")],
    )
    aliyun = content_for(content, A, REGISTRY)
    assert aliyun is not None and (aliyun.text, aliyun.template_id) == ("Acme: your code is 123456 (5 min)", None)
    # ...and back from Alibaba's text, whose params it kept.
    assert content_for(aliyun, T, REGISTRY) == content_for(content, T, REGISTRY)


def test_a_providers_own_template_id_moves_nowhere() -> None:
    own = MessageContent(type="OTP", template_id="1800308", template_params={"1": "x"}, route=(T,))  # type: ignore[arg-type]
    assert content_for(own, H, REGISTRY) is None


def test_config_errors_move_to_the_next_provider_with_their_history() -> None:
    queues, store = MemoryQueues(), MemoryStore()
    summary = run(template_pack(), ScriptedProvider(T, answer=lambda m: CONFIG), queues=queues, store=store)
    assert summary.failed_over == 3 and not store.messages  # nothing recorded for Tencent
    [moved] = queues.sent[H]
    assert moved.pack_id == "B:tencent:0.f:huawei:0" and moved.provider is H and moved.attempt == 0
    assert moved.contents[0].template_id == "tplLogin" and moved.contents[0].route == (T, H, A)
    step = moved.recipients[0].history[0]  # type: ignore[index]
    assert (step["id"], step["provider"], step["error_code"]) == ("failover-tencent", "tencent", CONFIG.code)
    # Huawei sends it; the record says where it went and why it moved.
    run(moved, ScriptedProvider(H), store=store)
    record = store.messages["B.00000"]
    assert (record.status, record.provider, record.template_id) == (Status.SUBMITTED, H, "tplLogin")
    assert record.events is not None and record.events[0]["id"] == "failover-tencent"


def test_a_moved_recipient_keeps_its_encoding_or_takes_the_one_of_the_text_rendered_for_the_next_provider() -> None:
    free = DispatchPack.model_validate(
        {
            "pack_id": "B:tencent:0",
            "batch_id": "B",
            "provider": T,
            "created_at": "2026-11-26T09:59:00.000000Z",
            "contents": [{"type": "OTP", "text": "验证码 1", "route": [T, H]}],
            "recipients": [{"id": "B.00000", "to": "+85251234560", "c": 0, "segments": 1, "encoding": "UCS-2"}],
        }
    )
    for pack, target, encoding in ((free, H, "UCS-2"), (template_pack(route=(T, A), n=1), A, "GSM-7")):
        queues, store = MemoryQueues(), MemoryStore()
        run(pack, ScriptedProvider(T, answer=lambda m: CONFIG), queues=queues, store=store)
        [moved] = queues.sent[target]
        assert moved.recipients[0].encoding == encoding
        run(moved, ScriptedProvider(target), store=store)
        assert store.messages["B.00000"].encoding == encoding


def test_a_config_error_with_no_provider_left_is_final() -> None:
    store = MemoryStore()
    summary = run(template_pack(route=(T,)), ScriptedProvider(T, answer=lambda m: CONFIG), store=store)
    assert (summary.failed, summary.failed_over) == (3, 0)
    assert {(m.status, m.error_code) for m in store.messages.values()} == {(Status.FAILED, CONFIG.code)}


def test_only_recipients_the_provider_did_not_take_move() -> None:
    refused = {"B.00001": CONFIG}
    unknown = ProviderError(ErrorCategory.UNKNOWN_OUTCOME, "READ_TIMEOUT")
    answers = {**refused, "B.00002": unknown}
    queues, store = MemoryQueues(), MemoryStore()
    summary = run(
        template_pack(), ScriptedProvider(T, answer=lambda m: answers.get(m.message_id)), queues=queues, store=store
    )
    assert summary.failed_over == 1
    assert [r.id for p in queues.sent[H] for r in p.recipients] == ["B.00001"]
    assert store.messages["B.00000"].status is Status.SUBMITTED
    assert store.messages["B.00002"].status is Status.SENDING  # may have been sent: waits for its receipt


def test_transient_errors_move_on_the_last_attempt_instead_of_failing() -> None:
    queues = MemoryQueues()
    summary = run(template_pack(), ScriptedProvider(T, answer=lambda m: DOWN), queues=queues, last_attempt=True)
    assert summary.failed_over == 3
    assert len(queues.sent[H]) == 1


def test_transient_errors_before_the_last_attempt_are_retried_where_they_are() -> None:
    with pytest.raises(RetryPack):
        run(template_pack(), ScriptedProvider(T, answer=lambda m: DOWN))


def test_failed_packs_in_a_row_open_the_breaker_and_the_pack_that_opens_it_moves() -> None:
    breakers, policy = (
        MemoryBreakers(),
        DispatchPolicies(breaker=BreakerPolicy(failures_to_open=3, cooldown_seconds=60)),
    )
    provider = ScriptedProvider(T, answer=lambda m: DOWN)
    for _ in range(2):
        with pytest.raises(RetryPack):
            run(template_pack(), provider, breakers=breakers, policies=policy)
    queues = MemoryQueues()
    summary = run(template_pack(), provider, breakers=breakers, policies=policy, queues=queues)
    assert summary.failed_over == 3 and breakers.state(T).is_open(NOW)
    # While it is open nobody calls Tencent for recipients that can go elsewhere.
    calls = len(provider.calls)
    queues = MemoryQueues()
    summary = run(template_pack(), provider, breakers=breakers, policies=policy, queues=queues)
    assert len(provider.calls) == calls and summary.failed_over == 3
    assert {r.history[0]["error_code"] for p in queues.sent[H] for r in p.recipients} == {"CIRCUIT_OPEN"}  # type: ignore[index]


def test_an_open_breaker_still_sends_recipients_with_nowhere_else_to_go() -> None:
    breakers = MemoryBreakers()
    breakers.record_failure(T, now=NOW, failures_to_open=1, cooldown_seconds=60)
    provider, store = ScriptedProvider(T), MemoryStore()
    summary = run(template_pack(route=(T,)), provider, breakers=breakers, store=store)
    assert summary.submitted == 3 and len(provider.calls) == 1
    assert breakers.state(T).failures == 0  # it answered: closed again


def test_after_the_cooldown_the_provider_is_tried_again() -> None:
    breakers = MemoryBreakers()
    breakers.record_failure(T, now=NOW, failures_to_open=1, cooldown_seconds=60)
    later = NOW + timedelta(seconds=61)
    summary = run(template_pack(), ScriptedProvider(T), breakers=breakers, now=later)
    assert summary.submitted == 3 and breakers.state(T).failures == 0


def test_pack_health_counts_only_calls_the_provider_did_not_answer() -> None:
    def outcome(error: ProviderError | None) -> SendOutcome:
        return SendOutcome(message_id="m", error=error)

    local = ProviderError(ErrorCategory.REQUEST, INVALID_REQUEST)
    throttled = ProviderError(ErrorCategory.THROTTLED, "LimitExceeded")
    timeout = ProviderError(ErrorCategory.UNKNOWN_OUTCOME, "READ_TIMEOUT")
    health = lambda *errors: pack_health([outcome(e) for e in errors], local_refusal_code=INVALID_REQUEST)  # noqa: E731
    assert health(DOWN, timeout) is PackHealth.FAILED
    assert health(DOWN, None) is PackHealth.ANSWERED
    assert health(throttled) is PackHealth.ANSWERED  # a provider that throttles is up
    assert health(local) is PackHealth.NOT_CALLED
    assert health(local, DOWN) is PackHealth.FAILED


def test_a_crash_after_queueing_a_failover_queues_the_same_packs_again() -> None:
    """The failover is noted on the claim before the packs are queued: the delivery that finds the claim stale
    queues them again under the same ids (claimed once downstream) and does not take them for unknown outcomes."""
    claims, store = MemoryClaims(), MemoryStore()
    queues = MemoryQueues()
    original = queues.send_packs
    calls = {"n": 0}

    def dies_after_queueing(*args, **kwargs):  # type: ignore[no-untyped-def]
        original(*args, **kwargs)
        calls["n"] += 1
        raise RuntimeError("killed")

    queues.send_packs = dies_after_queueing  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        run(template_pack(), ScriptedProvider(T, answer=lambda m: CONFIG), claims=claims, queues=queues, store=store)
    queues.send_packs = original  # type: ignore[method-assign]
    summary = run(
        template_pack(), ScriptedProvider(T), claims=claims, queues=queues, store=store, now=NOW + timedelta(minutes=5)
    )
    assert summary.unknown == 0 and not store.messages
    assert [p.pack_id for p in queues.sent[H]] == ["B:tencent:0.f:huawei:0"] * 2


def test_a_crash_after_moving_recipients_away_from_an_open_breaker_queues_the_same_packs_again() -> None:
    breakers = MemoryBreakers()
    breakers.record_failure(T, now=NOW, failures_to_open=1, cooldown_seconds=600)
    claims, store, queues = MemoryClaims(), MemoryStore(), MemoryQueues()
    original = queues.send_packs

    def dies_after_queueing(*args, **kwargs):  # type: ignore[no-untyped-def]
        original(*args, **kwargs)
        raise RuntimeError("killed")

    queues.send_packs = dies_after_queueing  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        run(template_pack(), ScriptedProvider(T), claims=claims, queues=queues, store=store, breakers=breakers)
    queues.send_packs = original  # type: ignore[method-assign]
    provider = ScriptedProvider(T)
    run(template_pack(), provider, claims=claims, queues=queues, store=store, now=NOW + timedelta(minutes=5))
    assert not provider.calls and not store.messages
    first, again = queues.sent[H]
    assert first.pack_id == again.pack_id and [r.id for r in first.recipients] == [r.id for r in again.recipients]


@pytest.mark.parametrize("code", ["LimitExceeded.PhoneNumberDailyLimit", "LimitExceeded.PhoneNumberThirtySecondLimit"])
def test_a_per_number_limit_is_not_sidestepped_through_another_provider(code: str) -> None:
    # Retried as THROTTLED, such a refusal was failed over on the pack's last attempt: Huawei texted the person past
    # the limit Tencent keeps for them.
    from globesms.providers.tencent.errors import classify
    from tests.fakes import MemoryQueues

    error = ProviderError(classify(code, 200), code, "limit", 200)
    queues, store = MemoryQueues(), MemoryStore()
    last = template_pack().model_copy(update={"attempt": 4, "pack_id": "B:tencent:0.r4"})
    run(last, ScriptedProvider(name=T, answer=lambda m: error), queues=queues, store=store)
    assert queues.sent.get(H, []) == [] and queues.sent.get(T, []) == []
    assert {r.status for r in store.messages.values()} == {Status.FAILED}


def test_recipients_moved_for_an_open_breaker_are_moved_with_one_reading_of_the_template_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The registry is cached for a minute: read twice in one pack (to skip, then to move), a refresh between the
    two after the next provider's version was removed left the skipped recipients neither called nor moved nor
    recorded, QUEUED for good. Now the pack moves them with the registry it skipped them with."""
    from globesms.dispatch import failover, service
    from globesms.routing.templates import parse_registry

    without_huawei = parse_registry(
        {"version": 1, "templates": {"login": {"tencent": {"id": "1800308", "params": ["code", "minutes"]}}}}, "PUT"
    )
    readings = iter([REGISTRY, without_huawei])
    monkeypatch.setattr(service, "template_registry", lambda: next(readings), raising=False)
    monkeypatch.setattr(failover, "template_registry", lambda: next(readings))
    breakers = MemoryBreakers()
    breakers.record_failure(T, now=NOW, failures_to_open=1, cooldown_seconds=600)
    store, queues, tencent = MemoryStore(), MemoryQueues(), ScriptedProvider(T)
    deps = DispatchDeps(
        provider=tencent,
        store=store,
        claims=MemoryClaims(),
        queues=queues,
        receipts=store,
        webhooks=MemoryWebhooks(),
        breakers=breakers,
    )
    summary = dispatch_pack(template_pack(route=(T, H)), deps, now=NOW, last_attempt=False)
    assert tencent.calls == [] and summary.failed_over == 3
    assert [r.to for p in queues.sent[H] for r in p.recipients] == [f"+8525123456{i}" for i in range(3)]


def test_a_takeover_that_cannot_move_what_the_dead_dispatcher_noted_as_moved_settles_it_as_unknown() -> None:
    """The dead holder noted a failover and died before queueing it; a template change removed the next provider's
    version before the takeover. Nothing can be queued there now, and whether the dead holder's copy reached the
    queue is unknown: the recipient was left neither queued nor recorded (QUEUED for good). Now its outcome is
    unknown (SENDING, DISPATCH_INTERRUPTED) and its settle pack is queued, so it ends final."""
    from globesms.errors import DispatchCode
    from globesms.routing.templates import parse_registry

    without_huawei = parse_registry(
        {"version": 1, "templates": {"login": {"tencent": {"id": "1800308", "params": ["code", "minutes"]}}}}, "PUT"
    )
    claims, store, queues = MemoryClaims(), MemoryStore(), MemoryQueues()
    pack = template_pack(route=(T, H), n=1)

    def killed(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("killed before queueing")

    sending = queues.send_packs
    queues.send_packs = killed  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        run(pack, ScriptedProvider(T, answer=lambda _m: CONFIG), claims=claims, queues=queues, store=store)
    assert claims.notes(pack.pack_id).requeued.failed_over == (0,)
    queues.send_packs = sending  # type: ignore[method-assign]
    later = NOW + timedelta(minutes=5)
    run(pack, ScriptedProvider(T), claims=claims, queues=queues, store=store, now=later, templates=without_huawei)
    record = store.messages["B.00000"]
    assert (record.status, record.error_code) == (Status.SENDING, DispatchCode.DISPATCH_INTERRUPTED)
    assert [p.purpose for p in queues.sent[T]] == ["settle"]


def big_template_pack(n: int = 200) -> DispatchPack:
    """Tencent → Alibaba NOTIFY templates whose rendered texts are long: the moved recipients fill Alibaba packs by
    bytes, not by count, so the history steps' size decides where a pack ends."""
    contents = [
        {"type": "NOTIFY", "template_id": "1800308", "template_ref": "login", "route": ["tencent", "aliyun"],
         "template_params": {"code": f"{i:04d}" + "x" * 700, "minutes": "5"}}
        for i in range(n)
    ]  # fmt: skip
    recipients = [{"id": f"B.{i:05d}", "to": f"+85251234{i:03d}", "c": i} for i in range(n)]
    return DispatchPack.model_validate(
        {"pack_id": "B:tencent:0", "batch_id": "B", "provider": "tencent",
         "created_at": "2026-11-26T09:59:00.000000Z", "contents": contents, "recipients": recipients}
    )  # fmt: skip


def test_a_failover_splits_into_the_same_packs_whatever_the_reasons() -> None:
    from globesms.dispatch.failover import REASON_BYTES, reroute

    pack = big_template_pack()
    moved = range(len(pack.recipients))
    short = reroute(pack, moved, reasons={}, now=NOW, templates=REGISTRY)
    long_code = "FailedOperation." + "Z" * 200  # longer than any code a provider is known to send
    long = reroute(pack, moved, reasons=dict.fromkeys(moved, long_code), now=NOW, templates=REGISTRY)

    def split(packs: list[DispatchPack]) -> list[tuple[str, list[str]]]:
        return [(p.pack_id, [r.id for r in p.recipients]) for p in packs]

    assert len(short.packs[A]) > 1 and split(short.packs[A]) == split(long.packs[A])
    steps = [(r.history or [])[-1]["error_code"] for p in long.packs[A] for r in p.recipients]
    assert {len(code) for code in steps} == {REASON_BYTES - 2} and steps[0] == long_code[: REASON_BYTES - 2]


def test_a_takeover_queues_a_failovers_packs_with_the_dead_dispatchers_recipients() -> None:
    """The dead holder moved a pack's recipients (config error: its reason in each history step) and died after
    SQS took the first failover pack. The takeover moves them again under the same ids without the reasons: the
    packs used to split elsewhere, so one id held other recipients in each copy (some never sent, some twice)."""
    pack, claims, store = big_template_pack(), MemoryClaims(), MemoryStore()
    config = ProviderError(ErrorCategory.CONFIG, "AuthFailure.UnauthorizedOperation", "not authorized", 200)

    class DiesAfterFirstPack(MemoryQueues):
        def send_packs(self, provider, packs, *, delay_seconds=0):  # type: ignore[no-untyped-def]
            self.sent[provider].append(packs[0])
            raise RuntimeError("died after the first call")

    dying = DiesAfterFirstPack()
    with pytest.raises(RuntimeError):
        run(pack, ScriptedProvider(T, 200, answer=lambda m: config), claims=claims, queues=dying, store=store)
    [first] = dying.sent[A]
    later = MemoryQueues()
    run(pack, ScriptedProvider(T, 200), claims=claims, queues=later, store=store, now=NOW + timedelta(minutes=5))
    again = {p.pack_id: [r.id for r in p.recipients] for p in later.sent[A]}
    assert len(again) > 1 and again[first.pack_id] == [r.id for r in first.recipients]
    assert sorted(i for ids in again.values() for i in ids) == [r.id for r in pack.recipients]
