"""The accept hook: recipients whose number is on the opt-out list are refused alone (`OPTED_OUT`).

One lookup per accept for every number the rule applies to (the store batches them), after routing, before packing.
Which store and rule apply comes from `current()`: the adapters' wiring registers its source with `use()` (as it
does for the template registry), so accept needs no new argument and a process without the consent table (unit
tests, a deployment without ConsentTable) has no list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from globesms import hooks
from globesms.consent.rules import DEFAULT_OWNER, blocked_types
from globesms.errors import RecipientCode
from globesms.models.errors import RecipientError
from globesms.models.records import MessageRecord, message_seq
from globesms.ports import OptOutStore


@dataclass(frozen=True)
class OptOutCheck:
    store: OptOutStore
    otp_too: bool = False
    owner: str = DEFAULT_OWNER


_deployed: hooks.Hook[OptOutCheck] = hooks.Hook(hooks.OPT_OUT_CHECK)


def current() -> OptOutCheck | None:
    return _deployed()


def refuse_opted_out(
    records: Sequence[MessageRecord], check: OptOutCheck | None
) -> tuple[list[MessageRecord], list[RecipientError]]:
    """The records that go, and a rejection for each one the opt-out list stops."""
    if check is None:
        return list(records), []
    blocked = blocked_types(otp_too=check.otp_too)
    numbers = {r.to for r in records if r.type in blocked}
    listed = check.store.listed(check.owner, numbers) if numbers else set()
    if not listed:
        return list(records), []
    kept: list[MessageRecord] = []
    refused: list[RecipientError] = []
    for record in records:
        if record.type in blocked and record.to in listed:
            refused.append(
                RecipientError(
                    index=message_seq(record.id),
                    to=record.to,
                    code=RecipientCode.OPTED_OUT,
                    message=f"the number is on the opt-out list: no {record.type} message is sent to it",
                )
            )
        else:
            kept.append(record)
    return kept, refused
