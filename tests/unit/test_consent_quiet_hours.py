"""Quiet hours for marketing: the window arithmetic across zones and DST changes (fixed clocks), the accept hook, the
request field and its waiver, the deployment setting."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import ValidationError

from globesms.accept.planning import plan_batch
from globesms.accept.service import QuietHoursNarrowed, check_quiet_hours
from globesms.config import QuietHoursSettings, load_settings, settings
from globesms.consent.quiet_hours import first_outside, zones_of
from globesms.consent.quiet_window import Window
from globesms.dispatch.validity import lapsed_positions
from globesms.domain.clock import iso
from globesms.domain.status import Status
from globesms.errors import RecipientCode
from globesms.models.api import MessageBatchSpec, MessageSpec, QuietHours, specs_of
from globesms.models.outbound import MessageType
from globesms.validation import problems
from local.template import load_raw_template

NIGHT = Window.parse("21:00-08:00")
SINGAPORE = "+6591234567"  # Asia/Singapore, UTC+8 all year
NY = (ZoneInfo("America/New_York"),)
LONDON = (ZoneInfo("Europe/London"),)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    settings.cache_clear()
    yield
    settings.cache_clear()


# ---- the window ----


def test_a_window_is_two_different_clock_times() -> None:
    assert Window(start=datetime(2026, 1, 1, 21).time(), end=datetime(2026, 1, 1, 8).time()) == NIGHT
    for bad in ("21:00", "21:00-21:00", "24:00-08:00", "21:00-8:00", "9pm-8am", "21:60-08:00"):
        with pytest.raises(ValueError, match=r"HH:MM|START-END|different"):
            Window.parse(bad)


def test_the_deployment_setting_is_validated_naming_the_variable() -> None:
    assert load_settings(QuietHoursSettings, {}).window() == NIGHT
    assert load_settings(QuietHoursSettings, {"GLOBESMS_QUIET_HOURS": "22:30-07:15"}).window() == Window.parse(
        "22:30-07:15"
    )
    with pytest.raises(ValueError, match=r"GLOBESMS_QUIET_HOURS: .*HH:MM"):
        load_settings(QuietHoursSettings, {"GLOBESMS_QUIET_HOURS": "late-early"})


def test_the_template_takes_exactly_the_windows_the_functions_read() -> None:
    """Until 2026-12-07 the QuietHours parameter's AllowedPattern took START == END (22:00-22:00), which the functions
    refuse at their first request: every send then failed (found by a review). Every HH:MM-HH:MM pair is checked
    against the pattern (CloudFormation's regexes are Java's; this pattern's constructs, a lookahead and a
    backreference, read the same in Python's)."""
    parameter = load_raw_template()["Parameters"]["QuietHours"]
    allowed = re.compile(parameter["AllowedPattern"])
    clocks = [f"{minute // 60:02d}:{minute % 60:02d}" for minute in range(24 * 60)]
    refused = [f"{start}-{end}" for start in clocks for end in clocks if not allowed.fullmatch(f"{start}-{end}")]
    assert refused == [f"{clock}-{clock}" for clock in clocks]
    for value in (parameter["Default"], "00:00-23:59", "23:59-00:00", "12:00-14:00", "22:00-22:01"):
        assert allowed.fullmatch(value)
        assert load_settings(QuietHoursSettings, {"GLOBESMS_QUIET_HOURS": value}).window().text() == value
    for value in ("22:00-22:00", "24:00-08:00", "21:00-8:00", "21:00", "", "21:00-08:00 "):
        assert not allowed.fullmatch(value), value


def test_inside_the_window_in_the_evening_defers_to_the_next_morning() -> None:
    zones = zones_of(SINGAPORE)
    assert [z.key for z in zones] == ["Asia/Singapore"]
    assert first_outside(utc(2026, 12, 4, 15), zones, NIGHT) == utc(2026, 12, 5, 0)  # 23:00 -> 08:00 local


def test_inside_the_window_after_midnight_defers_to_the_same_morning() -> None:
    assert first_outside(utc(2026, 12, 4, 19), zones_of(SINGAPORE), NIGHT) == utc(2026, 12, 5, 0)  # 03:00 local


def test_outside_the_window_is_not_deferred_and_the_edges_are_start_in_end_out() -> None:
    zones = zones_of(SINGAPORE)
    assert first_outside(utc(2026, 12, 4, 4), zones, NIGHT) == utc(2026, 12, 4, 4)  # 12:00 local
    assert first_outside(utc(2026, 12, 4, 0), zones, NIGHT) == utc(2026, 12, 4, 0)  # 08:00: the end is not quiet
    assert first_outside(utc(2026, 12, 4, 12, 59), zones, NIGHT) == utc(2026, 12, 4, 12, 59)  # 20:59
    assert first_outside(utc(2026, 12, 4, 13), zones, NIGHT) == utc(2026, 12, 5, 0)  # 21:00: the start is quiet


def test_a_window_within_one_day() -> None:
    lunch = Window.parse("12:00-14:00")
    zones = zones_of(SINGAPORE)
    assert first_outside(utc(2026, 12, 4, 5), zones, lunch) == utc(2026, 12, 4, 6)  # 13:00 -> 14:00 local
    assert first_outside(utc(2026, 12, 4, 3, 59), zones, lunch) == utc(2026, 12, 4, 3, 59)  # 11:59
    assert first_outside(utc(2026, 12, 4, 7), zones, lunch) == utc(2026, 12, 4, 7)  # 15:00
    assert first_outside(utc(2026, 12, 4, 15), zones, lunch) == utc(2026, 12, 4, 15)  # 23:00


def test_a_multi_zone_number_waits_for_its_latest_zone() -> None:
    zones = zones_of("+61412345678")  # an Australian mobile: every Australian zone, Cocos (UTC+6:30) the latest
    assert {"Australia/Sydney", "Australia/Perth", "Indian/Cocos"} <= {z.key for z in zones}
    # 22:00 UTC: 09:00 in Sydney (awake), 06:00 in Perth and 03:30 on Cocos (quiet): Cocos's 08:00 decides.
    assert first_outside(utc(2026, 12, 4, 22), zones, NIGHT) == utc(2026, 12, 5, 1, 30)
    # 10:30 UTC: 21:30 in Sydney (quiet until 21:00 UTC), when Cocos is quiet again (03:30): on to Cocos's 08:00.
    assert first_outside(utc(2026, 12, 4, 10, 30), zones, NIGHT) == utc(2026, 12, 5, 1, 30)
    # 04:00 UTC: 15:00 in Sydney, 10:30 on Cocos: nobody is quiet.
    assert first_outside(utc(2026, 12, 4, 4), zones, NIGHT) == utc(2026, 12, 4, 4)


def test_a_new_york_number_and_zones_that_never_agree() -> None:
    assert [z.key for z in zones_of("+12125550123")] == ["America/New_York"]
    # A 15-hour window in Singapore (UTC+8) and New York in winter (UTC-5): awake 01:00-10:00 UTC and
    # 14:00-23:00 UTC, never both.
    never = (ZoneInfo("Asia/Singapore"), ZoneInfo("America/New_York"))
    assert first_outside(utc(2026, 12, 4, 12), never, Window.parse("18:00-09:00")) is None
    assert first_outside(utc(2026, 12, 4, 12), never, NIGHT) == utc(2026, 12, 5, 0)  # 08:00 and 19:00


@pytest.mark.parametrize(
    ("zones", "moment", "expected"),
    [
        # New York springs forward on 2026-03-08 at 02:00 EST: 08:00 that morning is EDT, 12:00 UTC (not 13:00).
        (NY, utc(2026, 3, 8, 5), utc(2026, 3, 8, 12)),  # 00:00 EST
        (NY, utc(2026, 3, 8, 2), utc(2026, 3, 8, 12)),  # 21:00 EST the evening before
        # New York falls back on 2026-11-01 at 02:00 EDT: 08:00 that morning is EST, 13:00 UTC.
        (NY, utc(2026, 11, 1, 4, 30), utc(2026, 11, 1, 13)),  # 00:30 EDT
        (NY, utc(2026, 11, 1, 6, 30), utc(2026, 11, 1, 13)),  # 01:30 EST, the second 01:30
        # London springs forward on 2026-03-29 at 01:00 GMT, falls back on 2026-10-25 at 02:00 BST.
        (LONDON, utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 7)),  # 00:30 GMT -> 08:00 BST
        (LONDON, utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 8)),  # 01:30 BST -> 08:00 GMT
        (LONDON, utc(2026, 3, 29, 19, 30), utc(2026, 3, 29, 19, 30)),  # 20:30 BST: awake
        (LONDON, utc(2026, 3, 29, 20), utc(2026, 3, 30, 7)),  # 21:00 BST: quiet
    ],
)
def test_dst_change_days(zones: tuple[ZoneInfo, ...], moment: datetime, expected: datetime) -> None:
    assert first_outside(moment, zones, NIGHT) == expected


def test_an_end_skipped_by_the_dst_change_is_the_change_itself() -> None:
    # 02:30 does not exist in New York on 2026-03-08 (02:00 EST -> 03:00 EDT): the clock jumps past the end at the
    # change, 03:00 EDT (07:00 UTC), the first instant outside the window; never before it, never later.
    assert first_outside(utc(2026, 3, 8, 6), NY, Window.parse("21:00-02:30")) == utc(2026, 3, 8, 7)


def test_an_end_the_fall_back_repeats_is_its_first_pass_or_its_second_when_past_the_first() -> None:
    # 01:00-02:00 comes twice in New York on 2026-11-01 (EDT, then EST): a 01:45 end is 05:45 UTC, or 06:45 UTC for
    # a moment in the second pass (01:30 EST); never a time before the moment.
    window = Window.parse("21:00-01:45")
    assert first_outside(utc(2026, 11, 1, 5, 30), NY, window) == utc(2026, 11, 1, 5, 45)  # 01:30 EDT
    assert first_outside(utc(2026, 11, 1, 6, 30), NY, window) == utc(2026, 11, 1, 6, 45)  # 01:30 EST


_ZONE_SETS = [zones_of("+61412345678"), zones_of(SINGAPORE), NY, LONDON]
_CLOCKS = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))


@hypothesis_settings(max_examples=300, deadline=None)
# Found by this test: a window ending at 02:15 on New York's spring-forward day, when 02:15 does not exist; the first
# instant outside is the change itself (03:00 EDT, 07:00 UTC), not 02:15 read with either offset.
@example(moment=datetime(2026, 3, 8, tzinfo=UTC), zones=NY, start="04:00", end="02:15")
@given(
    moment=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)),
    zones=st.sampled_from(_ZONE_SETS),
    start=_CLOCKS,
    end=_CLOCKS,
)
def test_the_deferral_is_never_inside_any_zones_window_and_never_later_than_needed(
    moment: datetime, zones: tuple[ZoneInfo, ...], start: str, end: str
) -> None:
    if start == end:
        return
    window = Window.parse(f"{start}-{end}")

    def quiet_somewhere(at: datetime) -> bool:
        return any(window.quiet_at(at.astimezone(z).time()) for z in zones)

    outside = first_outside(moment, zones, window)
    if outside is None:  # only when the zones' waking hours never overlap: a day of minutes all quiet somewhere
        assert all(quiet_somewhere(moment + timedelta(minutes=m)) for m in range(0, 24 * 60, 15))
        return
    assert outside >= moment and not quiet_somewhere(outside)
    assert (outside == moment) == (not quiet_somewhere(moment))
    if outside > moment:  # the minute before it is still quiet in some zone: no earlier time would do
        assert quiet_somewhere(outside - timedelta(seconds=1))


# ---- the accept hook ----

EVENING = utc(2026, 12, 4, 15)  # 23:00 in Singapore
MORNING = utc(2026, 12, 5, 0)  # 08:00 in Singapore


def _spec(to: str, type_: str = "MKT", **fields: object) -> MessageSpec:
    # Built without validation: send_at's bounds are checked against the real clock, these use fixed ones.
    return MessageSpec.model_construct(to=to, text="sale", type=MessageType(type_), **fields)


def _plan(*specs: MessageSpec, now: datetime = EVENING, quiet: Window | None = NIGHT):  # type: ignore[no-untyped-def]
    return plan_batch(list(specs), batch_id="q1", now=now, retention_days=90, opt_outs=None, quiet=quiet)


def test_mkt_inside_quiet_hours_is_scheduled_to_their_end_other_types_are_not() -> None:
    plan = _plan(_spec(SINGAPORE), _spec("+6591234568", "NOTIFY"), _spec("+6591234569", "OTP"))
    assert plan.errors == []
    mkt, notify, otp = plan.records
    assert (mkt.status, mkt.send_at) == (Status.SCHEDULED, iso(MORNING))
    assert [g.ref.send_at for g in plan.held] == [iso(MORNING)]
    assert (notify.status, notify.send_at, otp.send_at) == (Status.ACCEPTED, None, None)
    queued = sorted(r.id for packs in plan.packs.values() for p in packs for r in p.recipients)
    assert queued == ["q1.00001", "q1.00002"]


def test_mkt_outside_quiet_hours_goes_now() -> None:
    plan = _plan(_spec(SINGAPORE), now=utc(2026, 12, 4, 4))
    assert (plan.records[0].status, plan.records[0].send_at, plan.held) == (Status.ACCEPTED, None, [])


def test_validity_lapsing_first_is_refused_alone_never_sent() -> None:
    just_enough = 9 * 3600 + 60  # 23:00 to 08:00 is 9 h: a minute left at the window's end
    plan = _plan(
        _spec(SINGAPORE, validity_seconds=3600),
        _spec("+6591234568", validity_seconds=just_enough),
        _spec("+6591234569", validity_seconds=9 * 3600),  # none left when it may go: refused too
    )
    assert [(e.index, e.code) for e in plan.errors] == [
        (0, RecipientCode.QUIET_HOURS_VALIDITY),
        (2, RecipientCode.QUIET_HOURS_VALIDITY),
    ]
    assert "never sent" in plan.errors[0].message
    assert [(r.id, r.send_at, r.validity_seconds) for r in plan.records] == [("q1.00001", iso(MORNING), 60)]


def test_a_deferral_keeps_the_validitys_end_where_it_was() -> None:
    """The dispatcher counts a validity from send_at: deferred to the window's end with its whole validity, an MKT
    message accepted at 23:00 with 10 h went out until 18:00, not 09:00 (a review found it sent hours late)."""
    plan = _plan(_spec(SINGAPORE, validity_seconds=10 * 3600))  # 23:00 Singapore: quiet until 08:00
    (pack,) = plan.held[0].packs
    assert lapsed_positions(pack, MORNING + timedelta(minutes=59)) == set()
    assert lapsed_positions(pack, MORNING + timedelta(hours=1)) == {0}  # 09:00: 10 h after accept


def test_an_own_send_at_outside_quiet_hours_is_kept_inside_is_moved_to_their_end() -> None:
    noon, late = utc(2026, 12, 5, 4), utc(2026, 12, 5, 14)  # 12:00 and 22:00 in Singapore
    plan = _plan(_spec(SINGAPORE, send_at=noon), _spec("+6591234568", send_at=late))
    assert [r.send_at for r in plan.records] == [iso(noon), iso(utc(2026, 12, 6, 0))]


def test_a_request_window_and_a_waiver_replace_the_default() -> None:
    lunch = QuietHours(start="22:30", end="09:00")
    plan = _plan(_spec(SINGAPORE, quiet_hours=lunch), _spec("+6591234568", quiet_hours=False))
    assert [r.send_at for r in plan.records] == [iso(utc(2026, 12, 5, 1)), None]


def test_the_default_comes_from_the_deployment_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLOBESMS_QUIET_HOURS", "23:30-06:00")
    assert _plan(_spec(SINGAPORE), quiet=None).records[0].send_at is None  # 23:00: not yet quiet
    settings.cache_clear()
    monkeypatch.setenv("GLOBESMS_QUIET_HOURS", "22:00-07:00")
    assert _plan(_spec(SINGAPORE), quiet=None).records[0].send_at == iso(utc(2026, 12, 4, 23))


# ---- the request field ----


def test_a_waiver_is_refused_for_new_mkt_work_naming_the_field_unless_the_deployment_allows_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Checked in accept for new work, as the window's cover rule: in the schema it refused a retry of a request
    accepted before the operator turned QuietHoursWaiver off (a review), and OTP or NOTIFY, where it does nothing."""
    body = {"to": SINGAPORE, "text": "sale", "type": "MKT", "quiet_hours": False}
    with pytest.raises(QuietHoursNarrowed) as refused:
        check_quiet_hours([MessageSpec.model_validate(body)])
    assert (refused.value.field, refused.value.rule) == (
        "quiet_hours",
        "false (waiving quiet hours) is not enabled on this deployment",
    )
    batch = MessageBatchSpec.model_validate(
        {
            "messages": [{"to": SINGAPORE, "text": "x", "type": "OTP"}, {**body, "quiet_hours": None}],
            "quiet_hours": False,
        }
    )
    with pytest.raises(QuietHoursNarrowed, match=r"^messages\.1\.quiet_hours: false"):
        check_quiet_hours(specs_of(batch))
    check_quiet_hours([MessageSpec.model_validate({**body, "type": "NOTIFY"})])  # does nothing there: not checked
    monkeypatch.setenv("GLOBESMS_QUIET_HOURS_WAIVER", "true")
    settings.cache_clear()
    check_quiet_hours([MessageSpec.model_validate(body)])


@pytest.mark.parametrize(
    "bad", [{"start": "25:00", "end": "08:00"}, {"start": "21:00", "end": "21:00"}, {"start": "21:00"}, True, "21-8"]
)
def test_a_bad_window_is_refused_naming_the_field_once(bad: object) -> None:
    """Once: as a plain union a bad window was also refused with "Input should be False", which pointed the client
    at a waiver it may not have (a review)."""
    with pytest.raises(ValidationError) as refused:
        MessageSpec.model_validate({"to": SINGAPORE, "text": "sale", "quiet_hours": bad})
    (problem,) = problems(refused.value)
    assert problem[0].startswith("quiet_hours") and "False" not in problem[1]


@pytest.mark.parametrize("narrower", [{"start": "04:00", "end": "04:01"}, {"start": "22:00", "end": "08:00"}])
def test_without_the_waiver_a_new_mkt_requests_window_may_widen_the_deployments_but_not_narrow_it(
    narrower: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A one-minute window sent an MKT at 23:00 local where the operator had not allowed waiving quiet hours: a
    waiver by another name (found by a review). Only MKT (the window does nothing to OTP and NOTIFY); with the
    waiver, any window goes."""
    mkt = MessageBatchSpec.model_validate(
        {
            "messages": [
                {"to": SINGAPORE, "text": "hi", "type": "NOTIFY", "quiet_hours": narrower},
                {"to": SINGAPORE, "text": "sale", "type": "MKT", "quiet_hours": narrower},
            ]
        }
    )
    with pytest.raises(QuietHoursNarrowed) as refused:
        check_quiet_hours(specs_of(mkt))
    assert refused.value.field == "messages.1.quiet_hours"
    assert "must cover this deployment's quiet hours (21:00-08:00)" in refused.value.rule
    request_wide = MessageBatchSpec.model_validate(
        {"messages": [{"to": SINGAPORE, "text": "sale", "type": "MKT"}], "quiet_hours": narrower}
    )
    with pytest.raises(QuietHoursNarrowed, match=r"^quiet_hours: must cover"):
        check_quiet_hours(specs_of(request_wide))
    check_quiet_hours(
        [MessageSpec.model_validate({"to": SINGAPORE, "text": "hi", "type": "OTP", "quiet_hours": narrower})]
    )
    wider = {"start": "20:00", "end": "09:00"}
    check_quiet_hours(
        [MessageSpec.model_validate({"to": SINGAPORE, "text": "sale", "type": "MKT", "quiet_hours": wider})]
    )
    monkeypatch.setenv("GLOBESMS_QUIET_HOURS_WAIVER", "true")
    settings.cache_clear()
    check_quiet_hours(specs_of(mkt))


def test_a_retry_of_an_accepted_request_gets_its_first_answer_after_the_deployments_quiet_hours_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Checked in the schema, the rule refused a retry (its first answer lost) once the operator had widened
    QuietHours: a client told 422 concludes nothing was sent, and sends again under a new key (a review)."""
    from globesms.accept.idempotency_outcomes import BatchDoneBefore
    from globesms.accept.service import accept
    from tests.fakes import MemoryQueues, MemoryStore

    own = {"start": "21:00", "end": "08:00"}
    spec = MessageSpec.model_validate({"to": SINGAPORE, "text": "sale", "type": "MKT", "quiet_hours": own})
    store, queues = MemoryStore(), MemoryQueues()
    now = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)  # 10:00 in Singapore
    first = accept([spec], batch_id="B1", source="api", now=now, retention_days=90, store=store, queues=queues)
    monkeypatch.setenv("GLOBESMS_QUIET_HOURS", "20:00-08:00")
    settings.cache_clear()
    with pytest.raises(QuietHoursNarrowed):
        check_quiet_hours([spec])  # new work is held to the new hours
    with pytest.raises(BatchDoneBefore) as replayed:  # the first answer, as the API and the intake give it again
        accept([spec], batch_id="B1", source="api", now=now, retention_days=90, store=store, queues=queues)
    assert (replayed.value.answer.batch_id, replayed.value.answer.accepted) == ("B1", first.accepted) == ("B1", 1)


@pytest.mark.parametrize(
    ("window", "other", "covers"),
    [
        ("21:00-08:00", "21:00-08:00", True),
        ("20:00-09:00", "21:00-08:00", True),
        ("21:00-08:00", "22:00-07:00", True),
        ("21:00-08:00", "20:59-08:00", False),
        ("21:00-08:00", "21:00-08:01", False),
        ("00:00-23:59", "21:00-08:00", False),  # the minute 23:59 is not quiet under it
        ("12:00-14:00", "12:30-13:00", True),
        ("12:00-14:00", "21:00-08:00", False),
        ("21:00-08:00", "01:00-02:00", True),
        ("21:00-08:00", "07:00-09:00", False),
    ],
)
def test_a_window_covers_another_when_every_minute_quiet_under_the_other_is_quiet_under_it(
    window: str, other: str, covers: bool
) -> None:
    assert Window.parse(window).covers(Window.parse(other)) is covers


def test_the_requests_window_goes_to_every_spec_without_its_own_and_unset_leaves_the_body_hash_alone() -> None:
    own = {"start": "20:30", "end": "10:00"}
    body = MessageBatchSpec.model_validate(
        {
            "messages": [{"to": SINGAPORE, "text": "a"}, {"to": SINGAPORE, "text": "b", "quiet_hours": own}],
            "quiet_hours": {"start": "20:00", "end": "09:00"},
        }
    )
    windows = [s.quiet_hours.window() for s in specs_of(body) if s.quiet_hours]
    assert windows == [Window.parse("20:00-09:00"), Window.parse("20:30-10:00")]
    assert "quiet_hours" not in MessageSpec.model_validate({"to": SINGAPORE, "text": "a"}).model_dump()
