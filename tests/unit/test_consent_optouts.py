"""The opt-out list's rules: numbers normalised to E.164, an entry kept as first added, and accept refusing an
opted-out recipient alone (MKT and NOTIFY; OTP only when the deployment says so)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from globesms import hooks
from globesms.accept.planning import plan_batch
from globesms.accept.service import accept
from globesms.consent import optouts
from globesms.consent.screen import OptOutCheck
from globesms.dispatch.service import DispatchDeps, dispatch_pack
from globesms.domain.status import Status
from globesms.errors import RecipientCode
from globesms.models.api import MessageSpec
from globesms.models.outbound import ProviderName
from globesms.models.packs import DispatchPack
from globesms.ports import KeywordWrite
from tests.fakes import MemoryClaims, MemoryQueues, MemoryStore, MemoryWebhooks, ScriptedProvider

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


class MemoryOptOuts:
    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], dict[str, Any]] = {}
        self.asked: list[set[str]] = []
        self.keywords_sent: dict[tuple[str, str], str] = {}  # when the last keyword applied was sent

    def listed(self, owner: str, numbers: Collection[str]) -> set[str]:
        self.asked.append(set(numbers))
        return {n for n in numbers if (owner, n) in self.entries}

    def get_opt_out(self, owner: str, number: str) -> dict[str, Any] | None:
        return self.entries.get((owner, number))

    def put_opt_out(self, owner: str, number: str, entry: dict[str, Any]) -> bool:
        if (owner, number) in self.entries:
            return False
        self.entries[(owner, number)] = entry
        return True

    def delete_opt_out(self, owner: str, number: str) -> dict[str, Any] | None:
        return self.entries.pop((owner, number), None)

    def page_opt_outs(self, owner: str, *, after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        numbers = sorted(n for o, n in self.entries if o == owner and (after is None or n > after))
        shown = numbers[:limit]
        return [self.entries[(owner, n)] for n in shown], (shown[-1] if len(numbers) > limit else None)

    def apply_keyword(
        self, owner: str, number: str, sent_at: str, entry: dict[str, Any] | None, *, expires_at: int
    ) -> KeywordWrite:
        if self.keywords_sent.get((owner, number), "") > sent_at:  # as the store's condition: a tie is applied
            return KeywordWrite(stale=True)
        self.keywords_sent[(owner, number)] = sent_at
        if entry is None:
            return KeywordWrite(removed=self.delete_opt_out(owner, number))
        return KeywordWrite(added=self.put_opt_out(owner, number, entry))


def entry(number: str, **fields: Any) -> optouts.OptOutEntry:
    return optouts.OptOutEntry(
        number=number, added_at="2026-11-26T10:00:00Z", source=optouts.OptOutSource.API, **fields
    )


@pytest.mark.parametrize("raw", ["+6591234567", "+65 9123-4567", " +65 (9123) 4567 ", "+65.9123.4567"])
def test_every_way_of_writing_a_number_is_one_entry(raw: str) -> None:
    assert optouts.normalise(raw) == "+6591234567"


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        ("6591234567", "international format"),
        ("+65", "not a phone number"),
        ("hello", "international format"),
        ("+6512", "not a valid number"),
        ("+85251234567 ext 9", "not a valid number"),
        ("+85251234OOO", "LATIN CAPITAL LETTER O"),  # listed +85251234666, somebody else (a review)
        ("+85251234567;isub=1", "SEMICOLON"),
    ],
)
def test_a_bad_number_is_refused_with_its_rule(raw: str, rule: str) -> None:
    with pytest.raises(optouts.NotANumber, match=rule):
        optouts.normalise(raw)


def test_a_landline_can_be_listed() -> None:
    # A number is listed as the person gave it; only accept insists on mobiles.
    assert optouts.normalise("+442079460000") == "+442079460000"


def test_adding_a_listed_number_again_keeps_its_first_entry() -> None:
    store = MemoryOptOuts()
    first, created = optouts.add(store, entry("+6591234567", reason="asked by phone"))
    assert created and first.reason == "asked by phone"
    again, created = optouts.add(store, entry("+6591234567", reason="other"))
    assert not created and again.reason == "asked by phone"
    assert optouts.remove(store, "+6591234567") == first
    assert optouts.remove(store, "+6591234567") is None
    assert optouts.get(store, "+6591234567") is None


def test_pages_follow_number_order_until_the_end() -> None:
    store = MemoryOptOuts()
    for number in ["+6591234569", "+6591234567", "+6591234568"]:
        optouts.add(store, entry(number))
    first = optouts.page(store, after=None, limit=2)
    assert [e.number for e in first.opt_outs] == ["+6591234567", "+6591234568"]
    assert first.next == "+6591234568"
    last = optouts.page(store, after=first.next, limit=2)
    assert ([e.number for e in last.opt_outs], last.next) == (["+6591234569"], None)


def specs(kind: str) -> list[MessageSpec]:
    return [MessageSpec.model_validate({"to": ["+85251234567", "+6591234567"], "text": "hello", "type": kind})]


@pytest.mark.parametrize("kind", ["MKT", "NOTIFY"])
def test_an_opted_out_recipient_is_refused_alone(kind: str) -> None:
    store = MemoryOptOuts()
    optouts.add(store, entry("+6591234567"))
    plan = plan_batch(specs(kind), batch_id="B1", now=NOW, retention_days=90, opt_outs=OptOutCheck(store))
    assert [r.to for r in plan.records] == ["+85251234567"]
    assert [(e.index, e.to, e.code) for e in plan.errors] == [(1, "+6591234567", "OPTED_OUT")]
    assert [r.to for pack in plan.packs[ProviderName.ALIYUN] for r in pack.recipients] == ["+85251234567"]


def test_an_otp_still_goes_unless_the_deployment_blocks_it_too() -> None:
    store = MemoryOptOuts()
    optouts.add(store, entry("+6591234567"))
    going = plan_batch(specs("OTP"), batch_id="B1", now=NOW, retention_days=90, opt_outs=OptOutCheck(store))
    assert (len(going.records), going.errors) == (2, [])
    assert store.asked == []  # nothing to ask: the rule does not apply to OTP
    blocked = plan_batch(
        specs("OTP"), batch_id="B1", now=NOW, retention_days=90, opt_outs=OptOutCheck(store, otp_too=True)
    )
    assert [e.code for e in blocked.errors] == ["OPTED_OUT"]


def test_opt_out_rejections_keep_the_request_order_among_other_rejections() -> None:
    store = MemoryOptOuts()
    optouts.add(store, entry("+6591234567"))
    body = [MessageSpec.model_validate({"to": ["+6591234567", "123", "+85251234567"], "text": "hi", "type": "MKT"})]
    plan = plan_batch(body, batch_id="B1", now=NOW, retention_days=90, opt_outs=OptOutCheck(store))
    assert [(e.index, e.code) for e in plan.errors] == [(0, "OPTED_OUT"), (1, "INVALID_NUMBER")]


def test_accept_writes_and_queues_nothing_for_an_opted_out_recipient(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryOptOuts()
    optouts.add(store, entry("+6591234567"))
    messages, queues = MemoryStore(), MemoryQueues()
    monkeypatch.setitem(hooks.installed, hooks.OPT_OUT_CHECK, lambda: OptOutCheck(store))  # what the wiring installs
    result = accept(
        specs("MKT"), batch_id="B1", source="api", now=NOW, retention_days=90, store=messages, queues=queues
    )
    assert (result.accepted, result.rejected) == (1, 1)
    assert [m.to for m in messages.messages.values()] == ["+85251234567"]
    assert messages.batches["B1"].errors[0].code == "OPTED_OUT"


def test_a_number_listed_after_accept_is_not_sent_at_dispatch_and_ends_failed_opted_out(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The list was read at accept only: a message waiting for its send_at, through quiet hours or behind a rate
    limit still went to a number that had opted out meanwhile."""

    listed = MemoryOptOuts()
    listed.entries[("default", "+85251234561")] = {"number": "+85251234561"}
    monkeypatch.setitem(hooks.installed, hooks.OPT_OUT_CHECK, lambda: OptOutCheck(listed))
    contents = [{"type": "MKT", "text": "sale"}, {"type": "OTP", "text": "code 1"}]
    pack = DispatchPack.model_validate(
        {
            "pack_id": "B:aliyun:0",
            "batch_id": "B",
            "provider": "aliyun",
            "created_at": "2026-11-26T09:59:00.000000Z",
            "contents": contents,
            "recipients": [
                {"id": "B.00000", "to": "+85251234560", "c": 0},
                {"id": "B.00001", "to": "+85251234561", "c": 0},  # opted out after accept
                {"id": "B.00002", "to": "+85251234561", "c": 1},  # an OTP: still goes (OptOutBlocksOtp off)
            ],
        }
    )
    store, provider = MemoryStore(), ScriptedProvider()
    summary = dispatch_pack(pack, _dispatch_deps(store, MemoryClaims(), provider), now=NOW, last_attempt=False)
    assert sorted(m.message_id for call in provider.calls for m in call) == ["B.00000", "B.00002"]
    opted = store.messages["B.00001"]
    assert (opted.status, opted.error_code, opted.provider_message_id) == (Status.FAILED, RecipientCode.OPTED_OUT, None)
    assert (summary.submitted, summary.failed) == (2, 1)
    assert listed.asked == [{"+85251234560", "+85251234561"}]  # one read a pack, MKT and NOTIFY numbers only


def test_a_takeover_after_a_dispatcher_died_past_its_calls_leaves_an_opted_out_recipient_failed(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """It is recorded before the calls: recorded only with the round's records, a dispatcher that died after its
    calls left it as accept wrote it, and the takeover settled it as possibly sent (SENDING, its spend kept)."""

    listed = MemoryOptOuts()
    listed.entries[("default", "+85251234561")] = {"number": "+85251234561"}
    monkeypatch.setitem(hooks.installed, hooks.OPT_OUT_CHECK, lambda: OptOutCheck(listed))
    pack = DispatchPack.model_validate(
        {
            "pack_id": "B:aliyun:0",
            "batch_id": "B",
            "provider": "aliyun",
            "created_at": "2026-11-26T09:59:00.000000Z",
            "contents": [{"type": "MKT", "text": "sale"}],
            "recipients": [
                {"id": "B.00000", "to": "+85251234560", "c": 0},
                {"id": "B.00001", "to": "+85251234561", "c": 0},
            ],
        }
    )
    store, claims = MemoryStore(), MemoryClaims()
    writes = store.put_messages

    def dies_at_the_round_s_write(messages, deadlines=()):  # type: ignore[no-untyped-def]
        if any(m.id == "B.00000" for m in messages):
            raise RuntimeError("the function timed out")
        return writes(messages, deadlines)

    store.put_messages = dies_at_the_round_s_write  # type: ignore[method-assign]

    with pytest.raises(RuntimeError):
        dispatch_pack(pack, _dispatch_deps(store, claims), now=NOW, last_attempt=False)
    store.put_messages = writes  # type: ignore[method-assign]
    later = NOW + timedelta(minutes=5)  # the claim stale: taken over
    dispatch_pack(pack, _dispatch_deps(store, claims), now=later, last_attempt=False)
    opted = store.messages["B.00001"]
    assert (opted.status, opted.error_code) == (Status.FAILED, RecipientCode.OPTED_OUT)
    assert store.messages["B.00000"].status is Status.SENDING  # sent, its outcome unknown: as for any such death


def _dispatch_deps(store: MemoryStore, claims: Any, provider: Any = None) -> Any:

    return DispatchDeps(
        provider=provider or ScriptedProvider(),
        store=store,
        claims=claims,
        queues=MemoryQueues(),
        receipts=store,
        webhooks=MemoryWebhooks(),
    )
