"""What a pushed reply does: its keyword applied to the opt-out list, stored once, forwarded as `message.received`.

Order, so that a push acknowledged is fully done, a push repeated (Alibaba retries unacknowledged pushes; any
provider may repeat one) does nothing twice, and a reply that `GET /v1/replies` shows as an opt-out took effect:
1. a stored reply of the same time and provider identity already marked handled is a duplicate: nothing more
   happens (one stored by an attempt that stopped before the end is finished as it was stored);
2. its keyword is applied (adding a listed number, or removing an unlisted one, changes nothing: safe to repeat),
   unless the person sent a later keyword that was applied already: a retried push is not in the order they were
   sent, so the `sent_at` of the last keyword applied is kept per number (`OptOutStore.apply_keyword`). Applied
   before the reply is stored: stored first, a STOP whose keyword then failed on every push of it (a throttled
   table; Tencent pushes three times) was listed as an opt-out while the number was not on the list, with nothing
   left to finish it (found by a review). Now such a reply is not stored at all until its keyword is applied;
3. the reply is stored with a conditional put keyed by when it was sent and its provider identity;
4. its event is queued (its id is the reply's, so a receiver deduplicates a repeat after a crash between 4 and 5);
5. the reply is marked handled. The provider is acknowledged only after all of them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from globesms.consent import optouts
from globesms.consent.rules import DEFAULT_OWNER
from globesms.domain.clock import iso
from globesms.domain.masking import mask
from globesms.models.webhooks import WebhookDelivery, WebhookEvent
from globesms.ports import OptOutStore, ReplyStore, WebhookQueue
from globesms.replies.keywords import KeywordAction, KeywordSets
from globesms.replies.models import InboundReply, ReplyPage, ReplyView

logger = logging.getLogger(__name__)  # a child of the Powertools logger: JSON lines, numbers masked
MAX_PAGE = 500


@dataclass
class RepliesResult:
    stored: int = 0
    duplicates: int = 0
    opted_out: int = 0
    opted_in: int = 0
    stale_keywords: int = 0  # older than the last keyword applied for the number: not applied


@dataclass(frozen=True)
class ReplyDeps:
    replies: ReplyStore
    opt_outs: OptOutStore
    webhooks: WebhookQueue
    keywords: KeywordSets
    callback: str  # "" : replies are not forwarded
    retention_days: int
    owner: str = DEFAULT_OWNER


def reply_sk(reply: InboundReply) -> str:
    return f"{reply.sent_at}#{reply.reply_id}"


#: Where the first arrival of a reply without a time of its own is kept: a partition of its own per owner, which the
#: replies' listing (`page`) never reads.
ARRIVALS_SUFFIX = "#arrivals"


def with_own_time(reply: InboundReply, deps: ReplyDeps, now: datetime) -> InboundReply:
    """`reply` with a `sent_at`: its provider's, else when it first arrived, kept (a conditional put under its id)
    the first time and read back on every repeat. With the arrival of each push instead, a repeat was stored and
    applied again as a new reply, and a START pushed again after a later STOP opted the number back in (found by a
    review)."""
    if reply.sent_at is not None:
        return reply
    first = deps.replies.put_reply(
        deps.owner + ARRIVALS_SUFFIX,
        reply.reply_id,
        {"sent_at": iso(now), "expires_at": _expiry(now, deps.retention_days)},
    )
    sent_at = iso(now) if first is None else str(first.get("sent_at") or iso(now))
    return reply.model_copy(update={"sent_at": sent_at})


def record_replies(replies: Sequence[InboundReply], deps: ReplyDeps, now: datetime) -> RepliesResult:
    result = RepliesResult()
    for reply in (with_own_time(r, deps, now) for r in replies):
        sk = reply_sk(reply)
        view = _applied_and_stored(_view(reply, deps, now), sk, deps, now, result)
        if view is None:
            result.duplicates += 1
            continue
        if deps.callback:
            deps.webhooks.send_webhooks([_event(view, deps.callback, now)])
        deps.replies.mark_reply_handled(deps.owner, sk)
        logger.info(
            "reply recorded",
            extra={"provider": reply.provider.value, "from": mask(reply.from_number), "keyword": view.keyword},
        )
    return result


def _view(reply: InboundReply, deps: ReplyDeps, now: datetime) -> ReplyView:
    assert reply.sent_at is not None
    matched = deps.keywords.match(reply.text)
    return ReplyView(
        id=reply.reply_id,
        provider=reply.provider,
        from_=reply.from_number,
        to=reply.to,
        text=reply.text,
        sent_at=reply.sent_at,
        received_at=iso(now),
        keyword=matched[0] if matched else None,
        action=matched[1].value if matched else None,
    )


def _applied_and_stored(
    view: ReplyView, sk: str, deps: ReplyDeps, now: datetime, result: RepliesResult
) -> ReplyView | None:
    """Steps 1-3 of the module's order: the reply as stored, its keyword applied; None for a duplicate."""
    existing = deps.replies.get_reply(deps.owner, sk)
    if existing is None:
        _apply_keyword(view, deps, now, result)
        item = {**view.model_dump(mode="json"), "handled": False, "expires_at": _expiry(now, deps.retention_days)}
        existing = deps.replies.put_reply(deps.owner, sk, item)  # None: stored; else a concurrent push's
        if existing is None:
            result.stored += 1
            return view
    elif not existing.get("handled"):  # stored by an attempt that stopped before the end: finish it as it was
        _apply_keyword(ReplyView.model_validate(existing), deps, now, result)
    return None if existing.get("handled") else ReplyView.model_validate(existing)


#: How far ahead of its arrival a reply's own time may be and still order its keyword: a provider's clock may run a
#: little ahead of ours (a STOP and a START seconds apart must keep their order), but a time further ahead is a
#: clock gone wrong, or a forged field, and counts as the arrival's: else one START dated 2999 would win over every
#: later STOP of that number, for good. Kept short: a START dated ahead by up to this outranks a STOP the person
#: sends within it, and that STOP is stale (stored, forwarded, not applied).
KEYWORD_CLOCK_AHEAD = timedelta(minutes=1)


def _keyword_time(view: ReplyView) -> str:
    """When the person sent the keyword, as the latest-word-wins order reads it (ISO, UTC)."""
    try:
        sent, received = datetime.fromisoformat(view.sent_at), datetime.fromisoformat(view.received_at)
    except ValueError:  # a record stored by an older version: its own times
        return view.sent_at
    return view.sent_at if sent <= received + KEYWORD_CLOCK_AHEAD else view.received_at


def _apply_keyword(view: ReplyView, deps: ReplyDeps, now: datetime, result: RepliesResult) -> None:
    if view.action not in (KeywordAction.OPT_OUT, KeywordAction.OPT_IN):
        return
    entry = optouts.OptOutEntry(
        number=view.from_,
        added_at=iso(now),
        source=optouts.OptOutSource.REPLY,
        provider=view.provider.value,
        keyword=view.keyword,
    )
    write = deps.opt_outs.apply_keyword(
        deps.owner,
        view.from_,
        _keyword_time(view),
        entry.model_dump(mode="json", exclude_none=True) if view.action == KeywordAction.OPT_OUT else None,
        expires_at=_expiry(now, deps.retention_days),
    )
    if write.stale:
        result.stale_keywords += 1
        logger.info("keyword older than the number's last one: not applied", extra={"number": mask(view.from_)})
    result.opted_out += write.added
    if write.removed is not None:
        removed = optouts.OptOutEntry.model_validate(write.removed)
        result.opted_in += 1
        logger.info(
            "opt-out removed",
            extra={
                "number": mask(view.from_),
                "added_at": removed.added_at,
                "added_by": removed.source.value,
                "removed_by": f"reply {view.keyword}",
            },
        )


def _event(view: ReplyView, url: str, now: datetime) -> WebhookDelivery:
    return WebhookDelivery(
        url=url,
        event=WebhookEvent(
            id=f"{view.id}.received", type="message.received", message=view.model_dump(mode="json"), created_at=iso(now)
        ),
    )


def _expiry(now: datetime, retention_days: int) -> int:
    return int((now + timedelta(days=retention_days)).timestamp())


def page(store: ReplyStore, *, after: str | None, limit: int, owner: str = DEFAULT_OWNER) -> ReplyPage:
    items, last = store.page_replies(owner, after=after, limit=limit)
    return ReplyPage(replies=[ReplyView.model_validate(i) for i in items], next=last)
