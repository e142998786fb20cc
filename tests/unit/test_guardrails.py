"""Guardrails: prices as data, the records' price and cost, country permissions, spend reservations (in memory),
the dry run, ownership of reads, and the documents' SSM override."""

from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from globesms.accept import queries
from globesms.accept.quote import quote
from globesms.accept.service import accept
from globesms.errors import RecipientCode
from globesms.guardrails import gate, spend
from globesms.guardrails.documents import (
    FRESH_ENOUGH_SECONDS,
    UNAVAILABLE_RETRY_SECONDS,
    DocumentError,
    DocumentUnavailable,
    OverridableDocument,
    parse_document,
)
from globesms.guardrails.limits import LimitsDoc
from globesms.guardrails.permissions import PermissionsDoc
from globesms.guardrails.ports import HeldForAnotherBody, Hold
from globesms.guardrails.prices import PriceTableDoc, current_prices, money
from globesms.models.api import MessageSpec
from globesms.models.outbound import MessageType, ProviderName
from tests.fakes import MemoryQueues, MemoryStore

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
HK, SG, GB = "+85251234567", "+6591234567", "+447400123456"


class MemoryLedger:
    """The SpendLedger contract, in memory: all-or-nothing, a batch reserves once, for the body it reserved for."""

    def __init__(self) -> None:
        self.counters: dict[tuple[str, str], Decimal] = {}
        self.held: dict[str, int] = {}
        self.bodies: dict[str, str | None] = {}
        self.calls = 0

    def try_reserve(self, hold: Hold) -> int | None:
        self.calls += 1
        if hold.batch_id in self.held:
            body = self.bodies.get(hold.batch_id)
            if body is not None and hold.body is not None and body != hold.body:
                raise HeldForAnotherBody(hold.batch_id)
            return self.held[hold.batch_id]
        for scope, limit in hold.limits.items():
            if hold.amount and self.counters.get((scope, hold.month), Decimal(0)) + hold.amount > limit:
                return None
        for scope in hold.scopes:
            key = (scope, hold.month)
            self.counters[key] = self.counters.get(key, Decimal(0)) + hold.amount
        self.held[hold.batch_id] = hold.count
        self.bodies[hold.batch_id] = hold.body
        return hold.count

    def spent(self, month: str, scopes: Collection[str]) -> dict[str, Decimal]:
        self.calls += 1
        return {s: self.counters.get((s, month), Decimal(0)) for s in scopes}

    def release(self, month: str, amounts: Mapping[str, Decimal]) -> None:
        for scope, amount in amounts.items():
            self.counters[(scope, month)] -= amount


def rules(permissions: dict[str, Any] | None = None, limits: dict[str, Any] | None = None) -> gate.Rules:
    return gate.Rules(
        prices=current_prices(),
        permissions=PermissionsDoc.model_validate({"version": 1, **(permissions or {})}),
        limits=LimitsDoc.model_validate({"version": 1, **(limits or {})}),
    )


@pytest.fixture(autouse=True)
def _rules_in_force(monkeypatch: pytest.MonkeyPatch) -> None:
    """accept() reads the documents in force; each test sets them through `use`."""
    monkeypatch.setattr(gate, "current_rules", lambda: rules())


def use(monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> None:
    monkeypatch.setattr(gate, "current_rules", lambda: rules(**kwargs))


def spec(**fields: object) -> MessageSpec:
    return MessageSpec.model_validate({"text": "Your code is 123456", **fields})


def send(specs: list[MessageSpec], ledger: MemoryLedger | None = None, batch_id: str = "B1", owner: str | None = None):  # type: ignore[no-untyped-def]
    store, queues = MemoryStore(), MemoryQueues()
    answer = accept(
        specs,
        batch_id=batch_id,
        source="api",
        now=NOW,
        retention_days=90,
        store=store,
        queues=queues,
        ledger=ledger,
        owner=owner,
    )
    return answer, store, queues


# ---- prices ----


def test_the_shipped_price_table_prices_the_test_countries_per_part() -> None:
    table = current_prices()
    assert table.currency == "USD" and table.as_of.isoformat() == "2026-12-01"
    assert table.price(ProviderName.ALIYUN, "HK", MessageType.OTP) == Decimal("0.0440")
    assert table.price(ProviderName.ALIYUN, "ZZ", MessageType.OTP) is None


def test_a_type_of_its_own_wins_over_the_star() -> None:
    table = PriceTableDoc.model_validate(
        {
            "version": 1,
            "currency": "EUR",
            "as_of": "2026-01-01",
            "prices": {"aliyun": {"HK": {"*": "0.01", "MKT": "0.02"}}},
        }
    )
    assert table.price(ProviderName.ALIYUN, "HK", MessageType.MKT) == Decimal("0.02")
    assert table.price(ProviderName.ALIYUN, "HK", MessageType.OTP) == Decimal("0.01")


@pytest.mark.parametrize(
    ("doc", "named"),
    [
        ({"version": 1, "currency": "usd", "as_of": "2026-01-01", "prices": {}}, "currency"),
        ({"version": 1, "currency": "USD", "as_of": "2026-13-01", "prices": {}}, "as_of"),
        (
            {"version": 1, "currency": "USD", "as_of": "2026-01-01", "prices": {"aliyun": {"HK": {"*": "-1"}}}},
            "prices.aliyun.HK.*",
        ),
        (
            {"version": 1, "currency": "USD", "as_of": "2026-01-01", "prices": {"aliyun": {"hk": {"*": "1"}}}},
            "prices.aliyun",
        ),
        ({"version": 1, "currency": "USD", "as_of": "2026-01-01", "prices": {"nokia": {}}}, "prices"),
    ],
)
def test_bad_price_data_is_refused_naming_the_field(doc: dict[str, Any], named: str) -> None:
    with pytest.raises(DocumentError, match=named.replace("*", r"\*")):
        parse_document(PriceTableDoc, doc, "test")


def test_money_is_a_plain_decimal_string() -> None:
    assert [money(Decimal(v)) for v in ("0.0440", "10.000000", "0", "0.0000004")] == ["0.044", "10", "0", "0"]


def test_records_and_the_answer_carry_segments_encoding_price_and_cost() -> None:
    answer, store, _ = send([spec(to=[HK, SG]), spec(to=GB, text="Ω " + "x" * 200)])
    assert [(m.segments, m.encoding, m.price, m.cost, m.currency) for m in answer.messages] == [
        (1, "GSM-7", "0.044", "0.044", "USD"),
        (1, "GSM-7", "0.038", "0.038", "USD"),
        (2, "GSM-7", "0.04", "0.08", "USD"),
    ]
    record = store.messages["B1.00002"]
    assert (record.country, record.segments, record.encoding, record.cost) == ("GB", 2, "GSM-7", "0.08")
    header = store.batches["B1"]
    assert (header.segments, header.cost, header.currency) == (4, "0.162", "USD")
    ucs2 = send([spec(to=HK, text="你好" * 40)])[0].messages[0]
    assert (ucs2.segments, ucs2.encoding, ucs2.cost) == (2, "UCS-2", "0.088")


def test_the_views_show_price_and_cost_and_the_batch_its_total() -> None:
    _, store, _ = send([spec(to=[HK, SG])])
    message = queries.get_message(store, "B1.00000")
    assert message is not None and (message.price, message.cost, message.encoding) == ("0.044", "0.044", "GSM-7")
    batch = queries.get_batch(store, "B1", limit=10, after=None)
    assert batch is not None and (batch.segments, batch.cost, batch.currency) == (2, "0.082", "USD")


def test_a_destination_without_a_price_is_sent_without_one_unless_a_limit_needs_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    unpriced = "+5511912345678"  # BR: not in the shipped table
    answer, _, _ = send([spec(to=unpriced)])
    assert answer.accepted == 1 and answer.messages[0].price is None and answer.messages[0].cost is None
    use(monkeypatch, limits={"monthly_spend": "100"})
    answer, _, _ = send([spec(to=[unpriced, HK])], MemoryLedger())
    assert [(e.index, e.code) for e in answer.errors] == [(0, RecipientCode.PRICE_UNKNOWN)]
    assert "no price for aliyun to BR" in answer.errors[0].message and answer.accepted == 1


# ---- country permissions ----


def test_a_recipient_outside_the_permissions_is_rejected_alone_naming_the_country(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use(monkeypatch, permissions={"types": {"OTP": {"allow": ["HK", "SG"]}}, "default": {"deny": ["GB"]}})
    answer, store, queues = send([spec(to=[HK, GB, SG], type="OTP"), spec(to=[HK, GB], type="MKT")])
    assert [(e.index, e.code) for e in answer.errors] == [
        (1, RecipientCode.COUNTRY_NOT_ALLOWED),
        (4, RecipientCode.COUNTRY_NOT_ALLOWED),
    ]
    assert answer.errors[0].message == "GB is not in the allow-list for OTP messages"
    assert answer.errors[1].message == "GB is in the deny-list for MKT messages"
    assert sorted(store.messages) == ["B1.00000", "B1.00002", "B1.00003"]
    assert sum(len(p.recipients) for packs in queues.sent.values() for p in packs) == 3


def test_a_deny_list_names_non_geographic_numbers_as_zz(monkeypatch: pytest.MonkeyPatch) -> None:
    # Their region is phonenumbers' "001", which no list of countries could name (a review).
    use(monkeypatch, permissions={"default": {"deny": ["ZZ"]}})
    answer, _, _ = send([spec(to=["+881612340001", HK])])
    assert [(e.index, e.code) for e in answer.errors] == [(0, RecipientCode.COUNTRY_NOT_ALLOWED)]
    assert answer.errors[0].message == "ZZ is in the deny-list for NOTIFY messages"


def test_every_recipient_refused_is_still_an_answer_with_none_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, permissions={"default": {"allow": []}})
    answer, store, _ = send([spec(to=[HK, SG])])
    assert (answer.accepted, answer.rejected) == (0, 2)
    assert store.batches["B1"].state == "REJECTED"


def test_a_rule_has_allow_or_deny_never_both() -> None:
    with pytest.raises(DocumentError, match=r"types\.OTP: give exactly one of 'allow' or 'deny'"):
        parse_document(PermissionsDoc, {"version": 1, "types": {"OTP": {"allow": ["HK"], "deny": ["GB"]}}}, "t")
    with pytest.raises(DocumentError, match=r"default\.deny"):
        parse_document(PermissionsDoc, {"version": 1, "default": {"deny": ["gb"]}}, "t")


# ---- spend limits ----


def test_the_request_proceeds_as_far_as_the_limit_allows_in_request_order(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, limits={"monthly_spend": "0.13"})  # HK 0.044 + SG 0.038 + GB 0.04 = 0.122; + HK again: over
    ledger = MemoryLedger()
    answer, store, _ = send([spec(to=[HK, SG, GB]), spec(to=[HK, SG], text="another")], ledger)
    assert answer.accepted == 3
    assert [(e.index, e.code) for e in answer.errors] == [(3, "SPEND_LIMIT_REACHED"), (4, "SPEND_LIMIT_REACHED")]
    assert "the deployment's 0.13 USD" in answer.errors[0].message
    assert ledger.counters[(spend.DEPLOYMENT, "2026-12")] == Decimal("0.122")
    assert sorted(store.messages) == ["B1.00000", "B1.00001", "B1.00002"]
    assert store.batches["B1"].rejected == 2


def test_a_request_is_reserved_in_one_write_when_it_fits_and_a_repeat_of_the_batch_reserves_nothing_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use(monkeypatch, limits={"monthly_spend": "1000"})
    ledger = MemoryLedger()
    send([spec(to=[HK, SG, GB])], ledger)
    assert ledger.calls == 1  # O(1) per request, not per recipient
    send([spec(to=[HK, SG, GB])], ledger)  # the same batch id again (a retried accept)
    assert ledger.counters[(spend.DEPLOYMENT, "2026-12")] == Decimal("0.122")


def test_the_api_keys_limit_holds_beside_the_deployments(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, limits={"monthly_spend": "100", "keys": {"k1": {"monthly_spend": "0.05"}}})
    ledger = MemoryLedger()
    answer, store, _ = send([spec(to=[HK, SG])], ledger, owner="k1")
    assert answer.accepted == 1 and "this API key's 0.05 USD" in answer.errors[0].message
    assert store.messages["B1.00000"].owner == "k1" and store.batches["B1"].owner == "k1"
    assert send([spec(to=[HK, SG])], ledger, batch_id="B2", owner="k2")[0].accepted == 2


def test_without_a_limit_spend_is_still_counted_and_without_prices_nothing_is_asked() -> None:
    ledger = MemoryLedger()
    send([spec(to=[HK])], ledger)
    assert ledger.counters[(spend.DEPLOYMENT, "2026-12")] == Decimal("0.044")
    ledger.calls = 0
    send([spec(to=["+5511912345678"])], ledger, batch_id="B2")
    assert ledger.calls == 0


class BusyLedger(MemoryLedger):
    """Every write that adds to the counters is lost to another writer (TransactionConflict on a hot counter item)
    until `busy` tries have been lost; a reservation of nothing (only the marker) always succeeds."""

    def __init__(self, busy: int) -> None:
        super().__init__()
        self.busy = busy

    def try_reserve(self, hold: Hold) -> int | None:
        if hold.amount and self.busy > 0:
            self.busy -= 1
            return None
        return super().try_reserve(hold)


@pytest.mark.parametrize("limits", [{}, {"monthly_spend": "1000"}])
def test_counters_that_stay_busy_refuse_for_being_busy_and_never_claim_a_limit(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, limits: dict[str, str]
) -> None:
    use(monkeypatch, limits=limits)
    ledger = BusyLedger(busy=spend.MAX_ATTEMPTS)
    answer, _, _ = send([spec(to=[HK, SG])], ledger)
    assert answer.accepted == 0 and [e.code for e in answer.errors] == ["SPEND_LIMIT_REACHED"] * 2
    assert {e.message for e in answer.errors} == {gate.SPEND_BUSY}
    assert "spend not reserved: the counters stayed busy" in caplog.text
    assert set(ledger.counters.values()) <= {0} and ledger.held == {"B1": 0}  # recorded: a retry answers the same
    if not limits:  # the retry reads the recorded refusal; with no limit to blame, it says why again
        again, _, _ = send([spec(to=[HK, SG])], ledger)
        assert {e.message for e in again.errors} == {gate.SPEND_BUSY}


def test_a_last_try_that_finds_another_attempts_reservation_answers_as_that_one(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class OtherAttemptFirst(BusyLedger):
        def try_reserve(self, hold: Hold) -> int | None:
            if not hold.amount:  # meanwhile another attempt of the batch reserved for its first recipient
                self.held.setdefault(hold.batch_id, 1)
            return super().try_reserve(hold)

    use(monkeypatch, limits={"monthly_spend": "1000"})
    answer, _, _ = send([spec(to=[HK, SG])], OtherAttemptFirst(busy=spend.MAX_ATTEMPTS))
    assert answer.accepted == 1 and "spend not reserved" not in caplog.text  # one is reserved, by that attempt


def test_a_limit_of_zero_is_named_as_a_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, limits={"monthly_spend": "0"})  # a spend freeze
    answer, _, _ = send([spec(to=[HK])], MemoryLedger())
    assert answer.accepted == 0 and "the deployment's 0 USD" in answer.errors[0].message


def test_a_try_lost_to_another_writer_is_tried_again_and_a_limit_still_names_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use(monkeypatch, limits={"monthly_spend": "0.05"})
    answer, _, _ = send([spec(to=[HK, SG])], BusyLedger(busy=spend.MAX_ATTEMPTS - 1))
    assert answer.accepted == 1 and "the deployment's 0.05 USD" in answer.errors[0].message


def test_a_release_gives_the_cost_back_to_the_month_it_was_reserved_in() -> None:
    ledger = MemoryLedger()
    _, store, _ = send([spec(to=[HK, SG])], ledger, owner="k1")
    gate.release(ledger, store.messages["B1.00000"])
    assert ledger.counters[(spend.DEPLOYMENT, "2026-12")] == Decimal("0.038")
    assert ledger.counters[("key:k1", "2026-12")] == Decimal("0.038")


def test_the_prefix_that_fits() -> None:
    costs = [Decimal(c) for c in ("1", "2", "3")]
    assert [spend.fitting(costs, Decimal(r)) for r in ("0", "1", "2.9", "3", "6", "7")] == [0, 1, 1, 2, 3, 3]
    assert spend.fitting(costs, None) == 3


# ---- dry run ----


def test_a_dry_run_runs_every_check_writes_nothing_and_answers_the_same_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, permissions={"default": {"deny": ["GB"]}}, limits={"monthly_spend": "0.05"})
    ledger = MemoryLedger()
    specs = [spec(to=[HK, GB, SG, "12345"])]
    first = quote(specs, now=NOW, retention_days=90, ledger=ledger, owner=None)
    assert [(m.to, m.provider, m.segments, m.encoding, m.price, m.cost) for m in first.messages] == [
        (HK, ProviderName.ALIYUN, 1, "GSM-7", "0.044", "0.044")
    ]
    assert [(e.index, e.code) for e in first.errors] == [
        (1, RecipientCode.COUNTRY_NOT_ALLOWED),
        (2, RecipientCode.SPEND_LIMIT_REACHED),
        (3, RecipientCode.INVALID_NUMBER),
    ]
    assert first.totals.model_dump() == {"recipients": 1, "segments": 1, "cost": {"USD": "0.044"}}
    assert ledger.counters == {} and ledger.held == {}
    assert quote(specs, now=NOW, retention_days=90, ledger=ledger, owner=None) == first


# ---- ownership ----


def test_another_keys_message_and_batch_are_not_found() -> None:
    _, store, _ = send([spec(to=[HK])], owner="k1")
    assert queries.get_message(store, "B1.00000", owner="k1") is not None
    assert queries.get_message(store, "B1.00000", owner="k2") is None
    assert queries.get_batch(store, "B1", limit=10, after=None, owner="k2") is None
    assert queries.get_batch(store, "B1", limit=10, after=None, owner="k1") is not None


# ---- the SSM override ----


def test_bad_data_in_the_parameter_is_refused_and_the_last_good_document_stays(
    caplog: pytest.LogCaptureFixture,
) -> None:
    values: list[Any] = [
        {"version": 1, "monthly_spend": "10"},
        {"version": 1, "monthly_spend": "ten"},
    ]
    fetched = iter(values)
    doc = OverridableDocument(LimitsDoc, "limits.json", fetch=lambda _name, fresh=False: next(fetched))
    assert doc.current("/g/limits").monthly_spend == Decimal("10")
    assert doc.current("/g/limits").monthly_spend == Decimal("10")  # the bad value refused
    assert "limits.json parameter refused" in caplog.text and "monthly_spend" in caplog.text
    assert doc.current("").monthly_spend is None  # no parameter: the shipped file


def test_an_unreadable_parameter_keeps_the_document_in_use() -> None:
    answers: list[Any] = ['{"version": 1, "monthly_spend": "10"}', ConnectionError("down")]
    clock = [0.0]

    def fetch(_name: str, fresh: bool = False) -> Any:
        answer = answers[0] if len(answers) == 1 else answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    doc = OverridableDocument(LimitsDoc, "limits.json", fetch=fetch, clock=lambda: clock[0])
    assert doc.current("/g/limits").monthly_spend == Decimal("10")
    clock[0] = 400.0  # past Powertools' cache: read again, and unreadable now
    assert doc.current("/g/limits").monthly_spend == Decimal("10")


@pytest.mark.parametrize("then", [ConnectionError("throttled"), '{"version": 1, "monthly_spend": "ten"}'])
def test_a_fresh_read_goes_past_the_cache_and_gives_no_last_good_document_in_place_of_a_failed_one(then: Any) -> None:
    """A dispatcher confirms a refusal its cached copy would make (`dispatch.permissions`): a failed or invalid
    fresh read must say so, not hand back the very copy it is confirming."""
    answers: list[Any] = ['{"version": 1, "monthly_spend": "10"}', '{"version": 1, "monthly_spend": "20"}', then]
    asked: list[bool] = []
    clock = [0.0]

    def fetch(_name: str, fresh: bool = False) -> Any:
        asked.append(fresh)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    doc = OverridableDocument(LimitsDoc, "limits.json", fetch=fetch, clock=lambda: clock[0])
    assert doc.current("/g/limits").monthly_spend == Decimal("10")
    assert doc.current("/g/limits", fresh=True).monthly_spend == Decimal("20")  # within the cache's time: read
    clock[0] = FRESH_ENOUGH_SECONDS - 1  # a good fresh read this recent stands for another: no read
    assert doc.current("/g/limits", fresh=True).monthly_spend == Decimal("20")
    clock[0] = FRESH_ENOUGH_SECONDS
    with pytest.raises(DocumentUnavailable):
        doc.current("/g/limits", fresh=True)
    clock[0] = 2 * FRESH_ENOUGH_SECONDS - 1  # a failed one this recent stands for another too: SSM is not asked
    with pytest.raises(DocumentUnavailable):
        doc.current("/g/limits", fresh=True)
    assert asked == [False, True, True]
    assert doc.current("/g/limits").monthly_spend == Decimal("20")  # the last good one, for the others


@pytest.mark.parametrize("first", [ConnectionError("throttled"), '{"version": 1, "monthly_spend": "ten"}'])
def test_a_process_with_no_good_value_of_its_parameter_sends_nothing_rather_than_fall_back_to_the_file(
    first: Any,
) -> None:
    """A new Lambda instance has no last good document. Falling back to the shipped file (no spend limit, every
    country allowed) let it spend past the operator's limit while the parameter was unreadable or invalid (a
    review spent 1.20 against a limit of 1.00). It refuses until it has read a good value, tried again soon."""
    answers: list[Any] = [first, '{"version": 1, "monthly_spend": "1.00"}']
    clock = [0.0]

    def fetch(_name: str, fresh: bool = False) -> Any:
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    doc = OverridableDocument(LimitsDoc, "limits.json", fetch=fetch, clock=lambda: clock[0])
    with pytest.raises(DocumentUnavailable, match=r"guardrail settings \(limits\) could not be read yet"):
        doc.current("/g/limits")
    clock[0] = UNAVAILABLE_RETRY_SECONDS
    assert doc.current("/g/limits").monthly_spend == Decimal("1.00")


def test_numbers_in_a_guardrail_document_never_go_through_float() -> None:
    limits = parse_document(LimitsDoc, '{"version": 1, "monthly_spend": 99999999999.999999}', "test")
    assert limits.monthly_spend == Decimal("99999999999.999999")


def test_an_absent_parameter_is_the_shipped_document_read_again_only_after_five_minutes() -> None:
    """An absent parameter was asked for at every send (Powertools caches no failure): 2-3 SSM reads a send, and a
    throttled one refused sends (503) for a document that was never unavailable (found by a review)."""
    from globesms.guardrails.documents import ABSENT, PARAMETER_MAX_AGE_SECONDS

    reads: list[str] = []
    answers: list[Any] = [ABSENT, ConnectionError("throttled")]
    clock = [0.0]

    def fetch(name: str, fresh: bool = False) -> Any:
        reads.append(name)
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    doc = OverridableDocument(LimitsDoc, "limits.json", fetch=fetch, clock=lambda: clock[0])
    for _ in range(100):
        assert doc.current("/g/limits") == doc.from_file()
    assert len(reads) == 1
    clock[0] = PARAMETER_MAX_AGE_SECONDS
    assert doc.current("/g/limits") == doc.from_file()  # a throttled read now: the shipped document still stands
    assert len(reads) == 2


def test_a_cold_instance_sees_a_fixed_invalid_parameter_within_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """After an invalid value with no good one in force, the parameter is read past Powertools' cache: the fixed
    value is seen in seconds, not when the 5-minute cache runs out (found by a review)."""
    import boto3
    from aws_lambda_powertools.utilities.parameters import base
    from moto import mock_aws

    from globesms.guardrails import documents

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    elapsed = [0.0]
    real = datetime.now()

    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[no-untyped-def,override]
            return real + timedelta(seconds=elapsed[0])

    monkeypatch.setattr(base, "datetime", Clock)
    with mock_aws():
        base.DEFAULT_PROVIDERS.clear()
        ssm = boto3.client("ssm")
        ssm.put_parameter(Name="/g/limits", Value='{"version": 1, "monthly_spend": "x"}', Type="String")
        doc = documents.OverridableDocument(LimitsDoc, "limits.json", clock=lambda: 1000.0 + elapsed[0])
        with pytest.raises(documents.DocumentUnavailable):
            doc.current("/g/limits")
        ssm.put_parameter(Name="/g/limits", Value='{"version": 1}', Type="String", Overwrite=True)  # fixed
        elapsed[0] = 10.0  # past UNAVAILABLE_RETRY_SECONDS, well within Powertools' 300 s
        try:
            assert doc.current("/g/limits").monthly_spend is None
        finally:
            base.DEFAULT_PROVIDERS.clear()
