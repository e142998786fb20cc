"""Quiet hours for marketing (pure: no I/O): an MKT recipient inside its quiet hours waits for their end.

Local time comes from the number: `phonenumbers.timezone.time_zones_for_number`, read with `zoneinfo`. A number
whose prefix spans several zones (an Australian mobile, a US number phonenumbers cannot place) counts as quiet when
ANY of its zones is quiet, so the deferral goes to the latest end among the quiet zones (and again, should another
zone be quiet by then). A recipient deferred is not refused: it gets `send_at` = the end of the window (status
SCHEDULED) and the scheduling machinery releases it; only one whose validity (counted from accept) would lapse first
is refused, with `QUIET_HOURS_VALIDITY`. A recipient with its own send_at is checked at that time. The deferral keeps
the validity's end where it was: the dispatcher counts a validity from `send_at`, so a deferred recipient's stored
validity is what is left of it at the window's end (until 2026-12-07 it started afresh there, and a marketing
message could go out hours after its validity). Why written here: no library applies a quiet window across a
number's time zones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers.timezone import UNKNOWN_TIMEZONE, time_zones_for_number
from phonenumbers.tzdata import TIMEZONE_DATA

from globesms.consent.quiet_window import Window
from globesms.domain.clock import iso
from globesms.domain.status import Status
from globesms.errors import RecipientCode
from globesms.models.errors import RecipientError
from globesms.models.outbound import MessageType
from globesms.models.records import MessageRecord, split_message_id

# How far to look for a time outside every zone's window: the windows repeat daily (give or take a DST hour), so a
# time that exists lies within a day and a bit; zones whose waking hours never overlap (a long window over a number
# placed only at country level) never settle.
_HORIZON = timedelta(days=2)


@cache
def zones_of(e164: str) -> tuple[ZoneInfo, ...]:
    """The number's time zones: those of its prefix, else its country's; none when neither is known."""
    number = phonenumbers.parse(e164)
    names = [n for n in time_zones_for_number(number) if n != UNKNOWN_TIMEZONE]
    if not names:
        names = list(TIMEZONE_DATA.get(str(number.country_code), ()))
    zones: list[ZoneInfo] = []
    for name in names:
        try:
            zones.append(ZoneInfo(name))
        except ZoneInfoNotFoundError:  # a name newer than the zone database: the others still count
            continue
    return tuple(zones)


def first_outside(moment: datetime, zones: Sequence[ZoneInfo], window: Window) -> datetime | None:
    """The first time at or after `moment` that is outside the window in every zone (`moment` itself when it is);
    None when the zones never agree."""
    at = moment.astimezone(UTC)
    while at - moment <= _HORIZON:  # each step moves past the end of a quiet spell: strictly later
        ends = [window.end_after(at.astimezone(z)) for z in zones if window.quiet_at(at.astimezone(z).time())]
        if not ends:
            return at
        at = max(ends)
    return None


def defer_quiet(
    records: Sequence[MessageRecord], windows: Mapping[str, Window | None], now: datetime
) -> tuple[list[MessageRecord], list[RecipientError]]:
    """The records that go (MKT ones inside their quiet hours SCHEDULED to the window's end), and a refusal for each
    one whose validity would lapse first. `windows`: record id -> its window (None or absent: waived)."""
    kept: list[MessageRecord] = []
    refused: list[RecipientError] = []
    for record in records:
        window = windows.get(record.id)
        if record.type != MessageType.MKT or window is None:
            kept.append(record)
            continue
        record.quiet_hours = window.text()  # carried to the dispatcher, which checks it again (`quiet_positions`)
        wanted = now if record.send_at is None else datetime.fromisoformat(record.send_at.replace("Z", "+00:00"))
        outside = first_outside(wanted, zones_of(record.to), window)
        if outside == wanted.astimezone(UTC):
            kept.append(record)
        elif outside is None or _lapses(record, outside, wanted):
            refused.append(_refusal(record, outside))
        else:
            kept.append(_deferred(record, outside, wanted))
    return kept, refused


def _deferred(record: MessageRecord, outside: datetime, wanted: datetime) -> MessageRecord:
    """`record` SCHEDULED to the window's end, with the validity left it there (`_validity_left`)."""
    update: dict[str, object] = {"send_at": iso(outside), "status": Status.SCHEDULED}
    if record.validity_seconds is not None:
        update["validity_seconds"] = _validity_left(record.validity_seconds, outside, wanted)
    return record.model_copy(update=update)


def _validity_left(validity: int, outside: datetime, wanted: datetime) -> int:
    """Whole seconds of a validity counted from `wanted` still left at `outside` (the fraction of a second the
    deferral has is counted as a whole one: never a second more than the customer gave)."""
    return validity - math.ceil((outside - wanted.astimezone(UTC)).total_seconds())


def quiet_until(to: str, window: Window, now: datetime) -> datetime | None:
    """When a recipient accepted outside its quiet hours but reached by its dispatcher inside them (a backlog behind a
    rate limit that ran into the evening) may be sent: the first time outside them, or None when it may go now."""
    outside = first_outside(now, zones_of(to), window)
    if outside is None:
        return now + _HORIZON  # never all outside: look again later (its validity, if any, ends it meanwhile)
    return None if outside <= now.astimezone(UTC) else outside


def _lapses(record: MessageRecord, send_at: datetime, wanted: datetime) -> bool:
    """Whether its validity, which counts from when it was to go (its own send_at, else now: docs/scheduling.md; a
    scheduled message three days ahead has its day of validity from then, not from now), has no whole second left
    at the window's end: it could never be sent in time (and a validity of 0 would read as none at all)."""
    return record.validity_seconds is not None and _validity_left(record.validity_seconds, send_at, wanted) < 1


def _refusal(record: MessageRecord, outside: datetime | None) -> RecipientError:
    parts = split_message_id(record.id)
    assert parts is not None, "accept names every message <batch id>.<position>"
    reason = (
        "its time zones are never all outside quiet hours"
        if outside is None
        else f"its quiet hours end at {iso(outside)}, after its validity lapses"
    )
    return RecipientError(
        index=parts[1], to=record.to, code=RecipientCode.QUIET_HOURS_VALIDITY, message=f"never sent: {reason}"
    )
