"""The country permissions read again at dispatch: a country denied after its message was accepted does not get it.

Accept refuses a recipient whose country the permissions do not allow (`guardrails.gate`). A message accepted
before its country was denied (an operator shutting a country during an SMS-pumping attack, say) may still be
waiting for its send_at, through quiet hours or behind a rate limit, and every one of them goes through a
dispatcher last. So the dispatcher reads the permissions in force (the document accept reads, cached the same way)
and a recipient they now refuse is recorded FAILED with `COUNTRY_NOT_ALLOWED`, never sent, its spend given back:
as an opt-out is (`dispatch.opt_outs`).

Three decisions, written down here:
- **A recipient whose pack carries no country is not checked again.** Packs queued before recipients carried
  their country have none; accept checked them, and parsing the number again here would cost every pack what the
  dispatcher saves by not importing phonenumbers (docs/performance.md, "Cold start" item 10).
- **A refusal is confirmed past every cache.** Accept and each dispatcher keep their own copy of the document for
  up to 5 minutes: after a country is allowed again (or added to an allow-list), a fresh accept could allow what a
  warm dispatcher's older copy refused, failing every such message for a change made *before* it was accepted
  (found by a review). So a pack whose recipients the cached copy refuses reads the document again from SSM, and
  that read's refusals stand (a pack without any refusal costs no read; a dispatcher reads it so at most every
  `FRESH_ENOUGH_SECONDS`, so that a backlog of packs to a denied country does not read SSM once a pack, past its
  throughput, which accept's reads share). If that read fails, the cached copy's refusals stand: a country shut
  during an attack stays shut while SSM throttles.
- **Permissions that cannot be read at all leave the message as accept allowed it** (logged): a dispatcher with no
  copy yet (a cold start, SSM failing). Accept refuses to start a send without them (`GUARDRAILS_UNAVAILABLE`);
  here the message was allowed when it was accepted, and holding or failing every pack of such a dispatcher would
  stop OTPs for a check that only catches a change made since.
"""

from __future__ import annotations

from typing import Protocol

from globesms.models.outbound import MessageType
from globesms.models.packs import DispatchPack


class CountryPermissions(Protocol):
    """The country permissions (`guardrails.permissions.PermissionsDoc`), as a dispatcher reads them."""

    def refusal(self, country: str | None, message_type: MessageType) -> str | None: ...


class PermissionsReader(Protocol):
    """`guardrails.permissions.current_permissions`: the document in force (cached for up to 5 minutes); `fresh`:
    read past every cache, raising unless that read gives a good document."""

    def __call__(self, *, fresh: bool = False) -> CountryPermissions: ...


def denied_positions(pack: DispatchPack, permissions: CountryPermissions | None) -> dict[int, str]:
    """The positions of the pack's recipients whose country the permissions now refuse, with why."""
    if permissions is None:
        return {}
    types = [MessageType(content.type) for content in pack.contents]
    reasons: dict[tuple[str, int], str | None] = {}  # a pack's 1,000 recipients share a few countries and contents
    denied = {}
    for i, recipient in enumerate(pack.recipients):
        if recipient.country is None:
            continue
        key = (recipient.country, recipient.c)
        if key not in reasons:
            reasons[key] = permissions.refusal(recipient.country, types[recipient.c])
        reason = reasons[key]
        if reason is not None:
            denied[i] = reason
    return denied
