"""Accept's side of scheduled sends: a request's SCHEDULED records become held packs, one group per send_at, and
each group's release is set on its way (`timing`: straight onto the release queue with a delay, or into the
time-bucketed index for the sweep).

The packs are built at accept, exactly as immediate ones are, with deterministic ids (`<batch>@<send_at>:<provider>:
<n>`), and kept in the table rather than on a provider queue; the release sends those same packs (less any
recipient canceled meanwhile). So a repeated accept or a repeated release never makes a new pack id for a recipient,
and dispatch's pack claim stays the guard against sending twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from globesms import hooks
from globesms.accept.packing import pack_records
from globesms.models.packs import DispatchPack
from globesms.models.records import MessageRecord
from globesms.ports import ReleaseQueue, ReleaseRef, ScheduleStore
from globesms.scheduling.timing import bucket_of, goes_direct, parse_iso, release_delay


@dataclass(frozen=True, slots=True)
class HeldGroup:
    """The packs of one batch due at one send_at."""

    ref: ReleaseRef
    packs: tuple[DispatchPack, ...]


@dataclass(frozen=True, slots=True)
class ScheduleDeps:
    store: ScheduleStore
    releases: ReleaseQueue


def held_groups(
    records: Iterable[MessageRecord],
    *,
    batch_id: str,
    created_at: str,
    expires_at: int | None,
    pack_id_prefix: str | None = None,
) -> list[HeldGroup]:
    """The scheduled records (those with a send_at) packed per send_at, in send_at order. `pack_id_prefix`: in place
    of the batch id (a resumed accept's fresh packs, `accept/resume.py`)."""
    by_time: dict[str, list[MessageRecord]] = {}
    for record in records:
        if record.send_at is not None:
            by_time.setdefault(record.send_at, []).append(record)
    groups = []
    for send_at in sorted(by_time):
        packs = pack_records(
            by_time[send_at],
            batch_id=batch_id,
            created_at=created_at,
            expires_at=expires_at,
            pack_id_prefix=f"{pack_id_prefix or batch_id}@{pack_time(send_at)}",
        )
        groups.append(
            HeldGroup(
                ReleaseRef(batch_id, send_at), tuple(p for provider_packs in packs.values() for p in provider_packs)
            )
        )
    return groups


def pack_time(send_at: str) -> str:
    """send_at as it appears in a pack id: digits only, to the microsecond as stored (`20261204T090000123456`).
    Every digit: two send_at values of one batch within a millisecond are two held groups, and packs of one id are
    sent once (until 2026-12-06 ids kept the millisecond, and the second group's recipients stayed QUEUED)."""
    return send_at.replace("-", "").replace(":", "").replace(".", "").rstrip("Z")


def hold(deps: ScheduleDeps, groups: Sequence[HeldGroup], *, now: datetime, expires_at: int) -> None:
    """Keep each group's packs, then set its release on its way. Repeatable: the same packs and index entries are
    written again, and a second release message is harmless (a release sends nothing twice)."""
    for group in groups:
        deps.store.hold_packs(group.ref, group.packs, expires_at=expires_at)
        send_at = parse_iso(group.ref.send_at)
        if goes_direct(send_at, now):
            deps.releases.send_releases([group.ref], delay_seconds=release_delay(send_at, now))
        else:
            deps.store.index_release(bucket_of(send_at), group.ref, expires_at=expires_at)


#: Where accept finds its schedule store and release queue (`aws.wiring` installs the deployed ones).
_deployed: hooks.Hook[ScheduleDeps] = hooks.Hook(hooks.SCHEDULE_DEPS)


def current() -> ScheduleDeps | None:
    return _deployed()
