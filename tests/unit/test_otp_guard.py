"""SMS-pumping protection on fixed clocks, with the OtpCounters contract in memory: OTP velocity per number
(VELOCITY_LIMIT, rolling hour and day as buckets), pumping holds per country (FRAUD_SUSPECTED) against a baseline,
the operator's release, dry runs that count nothing, and a retried batch that counts nothing twice."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from globesms.accept.quote import quote
from globesms.accept.service import accept
from globesms.errors import RecipientCode
from globesms.guardrails import gate, otp_guard
from globesms.guardrails.limits import LimitsDoc
from globesms.guardrails.permissions import PermissionsDoc
from globesms.guardrails.ports import CountryAdd, CountryCounts, NumberCounts, OtpCommit
from globesms.guardrails.prices import current_prices
from globesms.models.api import MessageSpec
from tests.fakes import MemoryQueues, MemoryStore

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
HK, SG = "+85251234567", "+6591234567"


def hk(n: int) -> str:
    return f"+8525123{n:04d}"


class MemoryOtpCounters:
    """The OtpCounters contract in memory: versioned number counters, a chunk commits once, country ADDs."""

    def __init__(self) -> None:
        self.numbers: dict[str, NumberCounts] = {}
        self.countries: dict[str, dict[str, Any]] = {}
        self.markers: dict[tuple[str, int], Mapping[int, tuple[str, str]]] = {}
        self.writes = 0
        self.meddle: list[str] = []  # numbers a "concurrent writer" bumps before the next commit

    def read(
        self, numbers: Collection[str], countries: Collection[str]
    ) -> tuple[dict[str, NumberCounts], dict[str, CountryCounts]]:
        found = {c: self.countries.get(c, {}) for c in countries}
        return (
            {n: self.numbers.get(n, NumberCounts()) for n in numbers},
            {
                c: CountryCounts(dict(v.get("m", {})), dict(v.get("h", {})), v.get("released_until", 0))
                for c, v in found.items()
            },
        )

    def try_commit(self, commit: OtpCommit) -> tuple[Mapping[int, tuple[str, str]], bool] | None:
        for number in self.meddle:  # another Lambda counts one message to this number first
            had = self.numbers.get(number, NumberCounts())
            self.numbers[number] = had._replace(version=had.version + 1, five_minutes={0: 0})
        self.meddle = []
        key = (commit.batch_id, commit.chunk)
        if key in self.markers:
            return self.markers[key], False
        if any(self.numbers.get(w.number, NumberCounts()).version != w.seen_version for w in commit.writes):
            return None
        for write in commit.writes:
            self.numbers[write.number] = write.counts
        self.markers[key] = dict(commit.refused)
        self.writes += 1
        return commit.refused, True

    def add_country(self, add: CountryAdd, expires_at: int) -> None:
        item = self.countries.setdefault(add.country, {"m": {}, "h": {}})
        item["m"][add.minute] = item["m"].get(add.minute, 0) + add.offered
        item["h"][add.hour] = item["h"].get(add.hour, 0) + add.passed
        for name in add.stale:
            item["m" if name[0] == "m" else "h"].pop(int(name[1:]), None)

    def release_country(self, country: str, until: int) -> None:
        self.countries.setdefault(country, {"m": {}, "h": {}})["released_until"] = until


@pytest.fixture
def counters() -> MemoryOtpCounters:
    return MemoryOtpCounters()


def use_limits(monkeypatch: pytest.MonkeyPatch, **limits: Any) -> None:
    doc = LimitsDoc.model_validate({"version": 1, **limits})
    rules = gate.Rules(current_prices(), PermissionsDoc.model_validate({"version": 1}), doc)
    monkeypatch.setattr(gate, "current_rules", lambda: rules)


@pytest.fixture(autouse=True)
def _default_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    use_limits(monkeypatch)


def otp(*to: str, type: str = "OTP") -> MessageSpec:
    return MessageSpec.model_validate({"to": list(to), "text": "Your code is 123456", "type": type})


class Sender:
    def __init__(self, counters: MemoryOtpCounters) -> None:
        self.counters = counters
        self.trips: list[otp_guard.Trip] = []
        self.guard = otp_guard.OtpGuard(counters, on_trip=self.trips.append)
        self.batches = 0

    def send(self, *specs: MessageSpec, at: datetime = NOW, owner: str | None = None, batch_id: str = ""):  # type: ignore[no-untyped-def]
        self.batches += 1
        return accept(
            list(specs),
            batch_id=batch_id or f"B{self.batches}",
            source="api",
            now=at,
            retention_days=90,
            store=MemoryStore(),
            queues=MemoryQueues(),
            owner=owner,
            otp=self.guard,
        )


def codes(answer: Any) -> list[str]:
    return [e.code for e in answer.errors]


# ---- velocity per number ----


def test_the_sixth_otp_to_a_number_within_the_hour_is_refused(counters: MemoryOtpCounters) -> None:
    sender = Sender(counters)
    for minute in range(5):
        assert sender.send(otp(HK), at=NOW + timedelta(minutes=minute * 10)).accepted == 1
    sixth = sender.send(otp(HK), at=NOW + timedelta(minutes=59))
    assert codes(sixth) == [RecipientCode.VELOCITY_LIMIT]
    assert "5 OTP messages to this number in the last hour: at most 5" in sixth.errors[0].message
    assert sender.send(otp(SG), at=NOW + timedelta(minutes=59)).accepted == 1  # another number is its own


def test_the_hour_window_is_strict_by_at_most_five_minutes(counters: MemoryOtpCounters) -> None:
    sender = Sender(counters)
    for _ in range(5):
        sender.send(otp(HK), at=NOW + timedelta(seconds=299))  # all in the 09:00-09:05 bucket
    # 10:04:59 is 60 min after the sends: an exact rolling hour would allow it; the buckets still count them.
    assert codes(sender.send(otp(HK), at=NOW + timedelta(minutes=64, seconds=59))) == [RecipientCode.VELOCITY_LIMIT]
    assert sender.send(otp(HK), at=NOW + timedelta(minutes=65)).accepted == 1  # the 09:00 bucket left the window


@pytest.mark.parametrize(("start", "every"), [(0, 97), (290, 61), (299, 7), (1, 300)])
def test_no_sixty_minutes_ever_hold_more_than_the_hourly_limit(
    counters: MemoryOtpCounters, start: int, every: int
) -> None:
    sender = Sender(counters)
    sent: list[datetime] = []
    for step in range(start, 3 * 3600, every):  # an OTP every few seconds for 3 hours, across the bucket edges
        at = NOW + timedelta(seconds=step)
        if sender.send(otp(HK), at=at).accepted:
            sent.append(at)
    assert sent
    for first in sent:
        assert sum(1 for s in sent if first <= s < first + timedelta(hours=1)) <= 5
    assert len(sent) <= 10  # and the day limit


def test_the_day_limit_counts_across_hours(counters: MemoryOtpCounters) -> None:
    sender = Sender(counters)
    for hour in range(10):
        assert sender.send(otp(HK), at=NOW + timedelta(hours=hour)).accepted == 1
    eleventh = sender.send(otp(HK), at=NOW + timedelta(hours=10))
    assert codes(eleventh) == [RecipientCode.VELOCITY_LIMIT]
    assert "in the last 24 hours: at most 10" in eleventh.errors[0].message
    assert sender.send(otp(HK), at=NOW + timedelta(hours=25)).accepted == 1  # the first hour's left the window


def test_a_number_twice_in_one_request_is_refused_before_counting(counters: MemoryOtpCounters) -> None:
    # One OTP per number per request, whatever the spec: the repeats never reach the counters (nor the marker,
    # which would otherwise grow with them past DynamoDB's 400 KB item).
    answer = Sender(counters).send(*[otp(HK) for _ in range(7)])
    assert answer.accepted == 1 and {e.code for e in answer.errors} == {RecipientCode.DUPLICATE_RECIPIENT}
    assert sum(counters.numbers[HK].five_minutes.values()) == 1 and list(counters.markers.values()) == [{}]


def test_a_request_past_one_chunk_counts_each_number_once_in_its_own_chunk(
    monkeypatch: pytest.MonkeyPatch, counters: MemoryOtpCounters
) -> None:
    # 250 distinct numbers: chunks of 99, 99 and 52, in first-seen order, each with its marker (the first number
    # again in another spec is refused by accept before the guard).
    use_limits(monkeypatch, otp_velocity={"per_hour": 1}, pumping={"floors": {"HK": 1000}})
    numbers = [hk(n) for n in range(250)]
    answer = Sender(counters).send(otp(*numbers), otp(numbers[0]))
    assert answer.accepted == 250 and [(e.index, e.code) for e in answer.errors] == [(250, "DUPLICATE_RECIPIENT")]
    positions = {chunk.split(".")[0]: refused for (_batch, chunk), refused in counters.markers.items()}
    assert sorted(positions) == ["0", "1", "2"]
    assert positions["0"] == {} and counters.writes == 3
    assert sorted(counters.numbers) == sorted(numbers)
    assert {c.version for c in counters.numbers.values()} == {1}


def test_other_types_are_not_counted(counters: MemoryOtpCounters) -> None:
    sender = Sender(counters)
    for _ in range(8):
        assert sender.send(otp(HK, type="NOTIFY")).accepted == 1
    assert counters.writes == 0 and counters.countries == {}


def test_the_limits_are_data_and_an_api_key_has_its_own(
    monkeypatch: pytest.MonkeyPatch, counters: MemoryOtpCounters
) -> None:
    use_limits(monkeypatch, otp_velocity={"per_hour": 2, "per_day": 3}, keys={"big": {"otp_velocity": {"per_hour": 4}}})
    sender = Sender(counters)
    assert sum(sender.send(otp(HK)).accepted for _ in range(3)) == 2
    assert sum(sender.send(otp(SG), owner="big").accepted for _ in range(5)) == 4  # per_day default 10 for "big"
    with pytest.raises(ValueError, match="per_hour"):
        LimitsDoc.model_validate({"version": 1, "otp_velocity": {"per_hour": 0}})


def test_a_dry_run_evaluates_and_counts_nothing(counters: MemoryOtpCounters) -> None:
    sender = Sender(counters)
    for _ in range(4):
        sender.send(otp(HK))
    for _ in range(5):
        sender.send(otp(SG))
    for _ in range(3):  # the same answer each time: nothing consumed
        quoted = quote([otp(HK, SG)], now=NOW, retention_days=90, ledger=_NoLedger(), owner=None,
                       otp=sender.guard)  # fmt: skip
        assert quoted.accepted == 1 and codes(quoted) == [RecipientCode.VELOCITY_LIMIT]
    assert sender.send(otp(HK)).accepted == 1  # the fifth is still there


def test_a_retried_batch_gives_the_same_answer_and_counts_nothing_twice(counters: MemoryOtpCounters) -> None:
    sender = Sender(counters)
    for _ in range(4):
        sender.send(otp(HK))
    first = sender.send(otp(HK, hk(1)), otp(hk(2)), batch_id="R")
    again = sender.send(otp(HK, hk(1)), otp(hk(2)), batch_id="R")
    assert first.accepted == again.accepted == 3 and codes(again) == []
    assert sum(counters.numbers[HK].five_minutes.values()) == 5
    assert sum(counters.countries["HK"]["m"].values()) == 4 + 3  # offered once, not twice
    again = sender.send(otp(HK), batch_id="S")
    assert codes(again) == codes(sender.send(otp(HK), batch_id="S")) == [RecipientCode.VELOCITY_LIMIT]


def test_a_write_lost_to_a_concurrent_one_is_decided_again(counters: MemoryOtpCounters) -> None:
    sender = Sender(counters)
    for _ in range(4):
        sender.send(otp(HK))
    counters.meddle = [HK]  # another Lambda's commit lands between this request's read and its write
    assert sender.send(otp(HK)).accepted == 1  # re-read, decided again on the new version


# ---- pumping per country ----


def test_a_country_never_seen_trips_at_its_floor(counters: MemoryOtpCounters, caplog: pytest.LogCaptureFixture) -> None:
    sender = Sender(counters)
    answer = sender.send(otp(*[hk(n) for n in range(30)]))
    assert answer.accepted == 20  # the floor: 20 in the window pass, the 21st is held
    assert set(codes(answer)) == {RecipientCode.FRAUD_SUSPECTED} and len(answer.errors) == 10
    assert "OTP to HK held as suspected SMS pumping" in answer.errors[0].message
    assert [(t.country, t.held) for t in sender.trips] == [("HK", 10)]
    assert any("HK" in r.getMessage() and "baseline of 0" in r.getMessage() for r in caplog.records)
    later = sender.send(otp(hk(99)), at=NOW + timedelta(minutes=2))  # still within the window: still held
    assert codes(later) == [RecipientCode.FRAUD_SUSPECTED]


def _steady(counters: MemoryOtpCounters, per_hour: int, country: str = "HK") -> None:
    """A country with `per_hour` OTP let through in each of the last 24 hours."""
    hour = int(NOW.timestamp()) // 3600
    counters.countries[country] = {"m": {}, "h": {hour - h: per_hour for h in range(1, 25)}}


def test_a_steady_country_doubling_at_nine_is_not_held(counters: MemoryOtpCounters) -> None:
    _steady(counters, per_hour=300)  # 25 per 5 minutes, all day: threshold max(20, 10 x 25) = 250
    sender = Sender(counters)
    answer = sender.send(otp(*[hk(n) for n in range(50)]))  # twice its usual 5 minutes
    assert answer.accepted == 50 and sender.trips == []


def test_a_burst_on_a_busy_country_is_held_past_factor_times_baseline(counters: MemoryOtpCounters) -> None:
    _steady(counters, per_hour=60)  # 5 per 5 minutes: threshold max(20, 50) = 50
    answer = Sender(counters).send(otp(*[hk(n) for n in range(80)]))
    assert answer.accepted == 50 and len(answer.errors) == 30
    assert "baseline of 5.00 per window (threshold 50.00)" in answer.errors[0].message


def test_the_hold_lifts_when_the_rate_falls_back(counters: MemoryOtpCounters) -> None:
    sender = Sender(counters)
    sender.send(otp(*[hk(n) for n in range(40)]))
    assert codes(sender.send(otp(hk(100)), at=NOW + timedelta(minutes=4))) == [RecipientCode.FRAUD_SUSPECTED]
    assert sender.send(otp(hk(101)), at=NOW + timedelta(minutes=6)).accepted == 1  # the burst left the window


def test_an_operator_release_lifts_the_hold(counters: MemoryOtpCounters) -> None:
    sender = Sender(counters)
    sender.send(otp(*[hk(n) for n in range(40)]))
    counters.release_country("HK", until=int((NOW + timedelta(hours=1)).timestamp()))
    assert sender.send(otp(*[hk(n) for n in range(200, 230)]), at=NOW + timedelta(minutes=1)).accepted == 30
    later = sender.send(otp(*[hk(n) for n in range(300, 330)]), at=NOW + timedelta(minutes=61))
    assert later.accepted < 30  # the release ended; the volume still trips


def test_held_recipients_reserve_no_spend_and_other_countries_flow(counters: MemoryOtpCounters) -> None:
    answer = Sender(counters).send(otp(*[hk(n) for n in range(25)], SG))
    assert answer.accepted == 21 and {m.to for m in answer.messages} >= {SG}
    assert len(counters.countries["HK"]["m"]) == 1 and counters.countries["HK"]["h"] == {
        int(NOW.timestamp()) // 3600: 20
    }  # the held ones are offered, not counted in the baseline


def test_a_per_country_floor_overrides_the_default(
    monkeypatch: pytest.MonkeyPatch, counters: MemoryOtpCounters
) -> None:
    use_limits(monkeypatch, pumping={"floor": 5, "floors": {"HK": 100}})
    answer = Sender(counters).send(otp(*[hk(n) for n in range(30)], SG))
    assert answer.accepted == 31


def test_a_prefix_too_small_for_its_country_to_notice_is_held_on_its_own(
    monkeypatch: pytest.MonkeyPatch, counters: MemoryOtpCounters
) -> None:
    # HK is busy (a threshold of 250 per window), so a burst of 40 to one range is lost in its volume; listed as a
    # prefix of its own, the range has no baseline and trips at the floor, while the rest of HK flows.
    _steady(counters, per_hour=300)
    use_limits(monkeypatch, pumping={"prefixes": ["+85251239", "+852512399"]})
    sender = Sender(counters)
    burst = [f"+852512399{n:02d}" for n in range(40)]  # under both prefixes: the longer one is its unit
    answer = sender.send(otp(*burst, *[hk(n) for n in range(30)]))  # hk(n): +85251230nnn, under neither
    assert answer.accepted == 20 + 30
    assert {e.to for e in answer.errors} <= set(burst) and len(answer.errors) == 20
    assert [(t.country, t.held) for t in sender.trips] == [("+852512399", 20)]
    assert "+852512399" in counters.countries and "+85251239" not in counters.countries
    assert sum(counters.countries["HK"]["m"].values()) == 30  # HK's other numbers still count as HK
    with pytest.raises(ValueError, match="prefixes"):
        LimitsDoc.model_validate({"version": 1, "pumping": {"prefixes": ["85251"]}})  # not E.164


class _NoLedger:
    def try_reserve(self, hold: Any) -> int | None:
        raise AssertionError("a dry run reserves nothing")

    def spent(self, month: str, scopes: Collection[str]) -> dict[str, Any]:
        return {}

    def release(self, month: str, amounts: Mapping[str, Any]) -> None:
        raise AssertionError("a dry run releases nothing")


def test_a_retry_whose_chunk_gained_a_number_screens_and_counts_it() -> None:
    """The chunk marker was by position alone: a retry of a batch whose first attempt refused a number before the
    guard (an opt-out, a permission, changed since) found the first attempt's marker, and the number passed on it,
    unscreened and uncounted: a 6th OTP in the hour (found by a review). The marker names the chunk's recipients."""
    from globesms.guardrails.limits import LimitsDoc
    from globesms.models.records import MessageRecord

    def record(batch: str, seq: int, to: str, country: str) -> MessageRecord:
        stamp = "2026-12-03T09:00:00.000000Z"
        return MessageRecord.model_validate(
            {"id": f"{batch}.{seq:05d}", "batch_id": batch, "to": to, "country": country, "provider": "aliyun",
             "type": "OTP", "text": "code 1", "status": "ACCEPTED", "created_at": stamp, "updated_at": stamp}
        )  # fmt: skip

    guard = otp_guard.OtpGuard(MemoryOtpCounters())
    limits = LimitsDoc.model_validate({"version": 1})  # 5 an hour a number

    def screen(batch: str, *records: MessageRecord) -> list[str]:
        refused = otp_guard.screen(guard, records, limits, batch_id=batch, owner=None, now=NOW, expires_at=2**31)
        return [e.code for e in refused]

    for n in range(5):
        assert screen(f"P{n}", record(f"P{n}", 0, HK, "HK")) == []
    assert screen("B", record("B", 1, SG, "SG")) == []  # the first attempt: HK refused before the guard
    assert screen("B", record("B", 0, HK, "HK"), record("B", 1, SG, "SG")) == ["VELOCITY_LIMIT"]
    assert screen("C", record("C", 1, SG, "SG")) == []
    assert screen("C", record("C", 1, SG, "SG")) == []  # the same chunk again: its first answer, counted once
    assert sum(guard.counters.numbers[SG].five_minutes.values()) == 3  # B's first attempt, B's retry, C once


def test_never_more_than_per_hour_when_requests_straddle_a_bucket_edge() -> None:
    """A request whose time reads a second before a 5-minute edge, reading the counters after five requests just
    past it, took their bucket for the future: it counted none of them, passed, and wrote the counters back without
    them, so five more passed after it (10 OTP to one number in 3 seconds, at 5 an hour)."""
    edge = NOW + timedelta(minutes=5)
    sender = Sender(MemoryOtpCounters())
    passed = sum(sender.send(otp(HK), at=edge + timedelta(seconds=1)).accepted for _ in range(5))
    passed += sender.send(otp(HK), at=edge - timedelta(seconds=1)).accepted
    passed += sum(sender.send(otp(HK), at=edge + timedelta(seconds=2)).accepted for _ in range(5))
    assert passed == 5


def test_recipients_refused_for_velocity_do_not_raise_the_pumping_baseline() -> None:
    """The baseline is the recipients let through: counted, those refused for velocity let a sender who stays under
    the floor on a few numbers all day raise the threshold tenfold for a later burst."""
    counters = MemoryOtpCounters()
    sender = Sender(counters)
    answers = [sender.send(otp(HK), at=NOW + timedelta(seconds=20 * i)) for i in range(10)]
    assert sum(codes(a).count(RecipientCode.VELOCITY_LIMIT) for a in answers) == 5
    assert counters.countries["HK"]["h"][int(NOW.timestamp()) // 3600] == 5


def test_non_geographic_numbers_are_held_and_released_as_zz(counters: MemoryOtpCounters) -> None:
    # phonenumbers gives +881 (satellite) the region "001": held under it, a release of ZZ (the documented unit, and
    # the only one an operator's tools can name) lifted nothing (a review).
    satellite = [f"+88161234{n:04d}" for n in range(35)]
    sender = Sender(counters)
    first = sender.send(otp(*satellite[:30]))
    assert first.accepted == 20 and set(codes(first)) == {"FRAUD_SUSPECTED"}
    assert first.errors[0].message.startswith("OTP to ZZ held")
    counters.release_country("ZZ", int(NOW.timestamp()) + 3600)
    assert sender.send(otp(*satellite[30:])).accepted == 5


class HeaderFailsOnce(MemoryStore):
    """The batch header's write fails once, after the OTP guard committed: the API answers 500."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = True

    def begin_batch(self, batch):  # type: ignore[no-untyped-def]
        if self.fail:
            self.fail = False
            raise RuntimeError("DynamoDB: InternalServerError")
        return super().begin_batch(batch)


def test_a_retry_planned_hours_later_is_checked_against_the_hour_it_is_planned_in(counters: MemoryOtpCounters) -> None:
    # Counted at 09:00 by an attempt that failed before its header, retried at 11:10 with its Idempotency-Key after
    # five other OTPs to the number since 11:00: the 09:00 marker's answer was replayed, a sixth OTP in 60 minutes
    # at five an hour (a review).
    sender, store = Sender(counters), HeaderFailsOnce()

    def keyed(at: datetime) -> Any:
        return accept(
            [otp(HK)], batch_id="K", source="api", now=at, retention_days=90, store=store, queues=MemoryQueues(),
            otp=sender.guard,
        )  # fmt: skip

    with pytest.raises(RuntimeError):
        keyed(NOW)
    later = NOW + timedelta(hours=2)
    assert [sender.send(otp(HK), at=later + timedelta(minutes=m)).accepted for m in range(5)] == [1] * 5
    retry = keyed(later + timedelta(minutes=10))
    assert (retry.accepted, codes(retry)) == (0, ["VELOCITY_LIMIT"])
