"""The OTP guard on the accept path: per-country pumping holds (FRAUD_SUSPECTED, `pumping.py`), then per-number
velocity limits (VELOCITY_LIMIT, `velocity.py`), on counters shared by every Lambda (`OtpCounters`).

Requests to AWS per request, not per recipient (only OTP recipients count; a request without any makes none):
one consistent `BatchGetItem` of the numbers' and countries' counters (100 keys per call), one `TransactWriteItems`
per 99 distinct numbers (each number's counters put only if unchanged since the read, plus the chunk's marker), and
one `UpdateItem` per distinct country. A one-recipient OTP request: 3 requests. A transaction lost to a concurrent
writer of the same number means a re-read of the chunk's numbers and a new decision, never a count over the limit.
A dry run reads and decides, and writes nothing.

A batch's chunk commits once (its marker keeps its refusals): a retried accept of the same batch gives the same
answer and counts nothing twice. Accept passes each number at most once (it refuses an OTP number repeated anywhere
in a request as DUPLICATE_RECIPIENT), so a chunk holds at most 99 records and its marker at most 99 refusals, some
20 KB: far under DynamoDB's 400 KB item, whatever the body. (Records of one number all go to one chunk: a body that
repeated a number 5,000 times would make a marker over 400 KB, and a transaction DynamoDB refuses.)
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from globesms.errors import RecipientCode
from globesms.guardrails import pumping
from globesms.guardrails.limits import LimitsDoc, OtpVelocity, Pumping
from globesms.guardrails.ports import CountryAdd, CountryCounts, NumberCounts, NumberWrite, OtpCommit, OtpCounters
from globesms.guardrails.velocity import Window
from globesms.models.errors import RecipientError
from globesms.models.outbound import MessageType
from globesms.models.records import MessageRecord, split_message_id

log = logging.getLogger(__name__)

UNKNOWN_COUNTRY = "ZZ"  # a number phonenumbers gives no region (non-geographic): counted as one "country"
CHUNK_NUMBERS = 99  # with the chunk's marker, DynamoDB's 100 items per TransactWriteItems
MAX_ATTEMPTS = 10  # transactions lost to concurrent writers of the same numbers before refusing the rest
MARKER_DAYS = 2  # a batch chunk's marker outlives any retry of the batch (idempotency keys last 24 hours)
BUSY = "this number's OTP counters stayed busy with concurrent requests: try again"

Refusals = dict[int, tuple[str, str]]
_NO_COUNTERS = NumberCounts()


@dataclass(frozen=True)
class Trip:
    """A country whose OTP this request held: for the log line and the PumpingSuspected metric."""

    country: str
    held: int
    reason: str


@dataclass(frozen=True)
class OtpGuard:
    counters: OtpCounters
    on_trip: Callable[[Trip], None] = field(default=lambda _trip: None)


def _index(record: MessageRecord) -> int:
    parts = split_message_id(record.id)
    return parts[1] if parts else 0


def _country(record: MessageRecord) -> str:
    return record.country or UNKNOWN_COUNTRY


def _in_unit(record: MessageRecord, rules: Pumping) -> MessageRecord:
    """The record as the pumping rule counts it: a number under a listed prefix counts under the prefix (the guard's
    own copy; the "country" below is then the unit), any other under its country."""
    prefix = rules.prefix_of(record.to) if rules.prefixes else None
    return record if prefix is None else record.model_copy(update={"country": prefix})


def screen(
    guard: OtpGuard,
    records: Sequence[MessageRecord],
    limits: LimitsDoc,
    *,
    batch_id: str,
    owner: str | None,
    now: datetime,
    expires_at: int,
    dry_run: bool = False,
) -> list[RecipientError]:
    """The refusals of the OTP recipients held or over their number's limits; the others are counted (`dry_run`:
    decided on the counters as they stand, nothing counted)."""
    otp = [_in_unit(r, limits.pumping) for r in records if r.type == MessageType.OTP]
    if not otp:
        return []
    at = int(now.timestamp())
    numbers = list(dict.fromkeys(r.to for r in otp))
    countries = list(dict.fromkeys(_country(r) for r in otp))
    number_counts, country_counts = guard.counters.read(numbers, countries)
    verdicts = {c: pumping.verdict(c, country_counts[c], limits.pumping, at) for c in countries}
    held = _held(otp, verdicts)
    velocity = limits.velocity_of(owner)
    if dry_run:
        decided = _velocity([r for r in otp if _index(r) not in held], number_counts, velocity, at)[0]
        return _errors(otp, held | decided)
    refused: dict[int, tuple[str, str]] = {}
    fresh = True
    for chunk, mine in enumerate(_chunks(otp, numbers)):
        ctx = _Chunk(guard.counters, batch_id, chunk_key(chunk, mine, at), expires_at, velocity, at)
        done, written = ctx.commit(
            mine, {i: held[i] for i in map(_index, mine) if i in held} if held else {}, number_counts
        )
        refused |= done
        fresh = fresh and written
    if fresh:  # a retried batch counted its countries the first time
        # The baseline counts those let through: not those held, nor those refused for velocity (or busy counters).
        _count_countries(guard, otp, refused, country_counts, limits, at, expires_at)
        _report(guard, otp, held, verdicts)
    return _errors(otp, refused)


def chunk_key(chunk: int, records: Sequence[MessageRecord], at: int) -> str:
    """What a chunk's marker is written under: its position, the hour it was planned in (`at`, epoch seconds) and a
    digest of its recipients (index and number). A retry whose chunk holds the same recipients, planned in the same
    hour, finds the first attempt's marker, counted once; one whose chunk changed (a recipient refused the first time
    for a permission or an opt-out changed since) is a chunk of its own, its numbers counted again: stricter, never
    looser. Until 2026-12-06 the marker was by position alone, and a number new to the chunk passed on the earlier
    attempt's answer, unscreened and uncounted (found by a review). The hour, since 2026-12-07: a retry planned
    hours later (an attempt that failed before its batch header, retried with its Idempotency-Key) replayed the
    first answer, and its OTP went out unchecked against the number's current hour (a review: six in 60 minutes at
    five an hour). A resume plans at its first attempt's time, so it finds its marker whenever it comes."""
    digest = hashlib.sha256("\n".join(f"{_index(r)}:{r.to}" for r in records).encode()).hexdigest()[:16]
    return f"{chunk}.{pumping.hour_of(at)}.{digest}"


def _chunks(otp: Sequence[MessageRecord], numbers: list[str]) -> list[list[MessageRecord]]:
    """The records in chunks of CHUNK_NUMBERS distinct numbers (`numbers` in first-seen order), each chunk's
    records in request order; one pass (a 10,000-recipient request is ~100 chunks)."""
    chunk_of = {number: i // CHUNK_NUMBERS for i, number in enumerate(numbers)}
    chunks: list[list[MessageRecord]] = [[] for _ in range(-(-len(numbers) // CHUNK_NUMBERS))]
    for record in otp:
        chunks[chunk_of[record.to]].append(record)
    return chunks


def _held(otp: Sequence[MessageRecord], verdicts: Mapping[str, pumping.Verdict]) -> Refusals:
    offered: Counter[str] = Counter()
    held: Refusals = {}
    for record in otp:
        country = _country(record)
        offered[country] += 1
        allowance = verdicts[country].allowance
        if allowance is not None and offered[country] > allowance:
            held[_index(record)] = (RecipientCode.FRAUD_SUSPECTED, verdicts[country].reason(offered[country]))
    return held


def _velocity(
    records: Sequence[MessageRecord], counts: Mapping[str, NumberCounts], limits: OtpVelocity, at: int
) -> tuple[Refusals, list[NumberWrite]]:
    """Each record in order against its number's windows (a number twice in a request counts twice)."""
    windows: dict[str, Window] = {}
    grown: set[str] = set()
    refused: Refusals = {}
    unseen = Window.of(NumberCounts(), at)  # a number without counters yet (most): one window shared
    for record in records:
        window = windows.get(record.to)
        if window is None:
            found = counts.get(record.to)
            window = unseen if found is None or found == _NO_COUNTERS else Window.of(found, at)
        reason = window.refusal(limits)
        if reason is not None:
            refused[_index(record)] = (RecipientCode.VELOCITY_LIMIT, reason)
            windows[record.to] = window
            continue
        windows[record.to] = window.plus_one()
        grown.add(record.to)
    writes = []
    for number in sorted(grown):
        seen = counts.get(number, NumberCounts()).version
        writes.append(NumberWrite(number, seen, windows[number].counts(seen + 1)))
    return refused, writes


@dataclass(frozen=True)
class _Chunk:
    counters: OtpCounters
    batch_id: str
    chunk: str
    expires_at: int
    limits: OtpVelocity
    at: int

    def commit(
        self, records: list[MessageRecord], held: Refusals, counts: Mapping[str, NumberCounts]
    ) -> tuple[Mapping[int, tuple[str, str]], bool]:
        """The chunk's refusals, and whether this attempt wrote them (False: an earlier attempt of the batch did)."""
        candidates = [r for r in records if _index(r) not in held] if held else records
        for _attempt in range(MAX_ATTEMPTS):
            refused, writes = _velocity(candidates, counts, self.limits, self.at)
            answer = self.counters.try_commit(self._of(writes, held | refused))
            if answer is not None:
                return answer
            counts = self.counters.read({r.to for r in candidates}, ())[0]
        busy = held | {_index(r): (RecipientCode.VELOCITY_LIMIT, BUSY) for r in candidates}
        answer = self.counters.try_commit(self._of([], busy))  # nothing counted: only the marker
        assert answer is not None, "a commit without writes can only find its marker"
        return answer

    def _of(self, writes: list[NumberWrite], refused: Refusals) -> OtpCommit:
        return OtpCommit(self.batch_id, self.chunk, writes, refused, self.expires_at)


def _count_countries(
    guard: OtpGuard,
    otp: Sequence[MessageRecord],
    refused: Mapping[int, tuple[str, str]],
    counts: Mapping[str, CountryCounts],
    limits: LimitsDoc,
    at: int,
    expires_at: int,
) -> None:
    offered = Counter(_country(r) for r in otp)
    stopped = Counter(_country(r) for r in otp if _index(r) in refused) if refused else Counter[str]()
    for country, n in offered.items():
        stale = pumping.stale_buckets(counts[country], limits.pumping, at)
        add = CountryAdd(country, pumping.minute_of(at), n, pumping.hour_of(at), n - stopped[country], stale)
        guard.counters.add_country(add, expires_at)


def _report(
    guard: OtpGuard, otp: Sequence[MessageRecord], held: Refusals, verdicts: Mapping[str, pumping.Verdict]
) -> None:
    if not held:
        return
    stopped = Counter(_country(r) for r in otp if _index(r) in held)
    offered = Counter(_country(r) for r in otp) if stopped else Counter[str]()
    for country, n in stopped.items():
        trip = Trip(country, n, verdicts[country].reason(offered[country]))
        log.warning("%s: %d recipients held", trip.reason, n, extra={"country": country, "held": n})
        guard.on_trip(trip)


def _errors(otp: Sequence[MessageRecord], refused: Mapping[int, tuple[str, str]]) -> list[RecipientError]:
    if not refused:
        return []
    by_index = {_index(r): r for r in otp}
    return [
        RecipientError(index=i, to=by_index[i].to, code=RecipientCode[code], message=message)
        for i, (code, message) in sorted(refused.items())
        if i in by_index
    ]
