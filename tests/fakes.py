"""In-memory stand-ins for the ports, for logic tests without I/O."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from globesms.counts.tally import BatchTally, creation_status
from globesms.dispatch.deps import DispatchDeps
from globesms.domain.clock import iso
from globesms.domain.history import HistoryStep
from globesms.domain.status import Status
from globesms.errors import InvalidProviderRequest, ProviderError
from globesms.guardrails.ports import Charge, ChargeMade, Reservation
from globesms.models.outbound import OutboundSms, ProviderName, SendOutcome
from globesms.models.packs import DispatchPack
from globesms.models.receipts import EchoRange, HeldReceipts
from globesms.models.records import UNSETTLED_STATES, BatchRecord, MessageRecord, message_id, split_message_id
from globesms.models.webhooks import WebhookDelivery
from globesms.ports import (
    BreakerState,
    Claim,
    ClaimNotes,
    InvalidCursor,
    MessageLookup,
    PlannedCall,
    ReleaseRef,
    Requeued,
    StoredTemplate,
    StoredTemplates,
    SweepCursor,
)
from globesms.reconcile.deadline import DeadlineEntry, is_due
from globesms.scheduling.timing import MAX_SQS_DELAY_SECONDS


class MemoryStore:
    def __init__(self) -> None:
        self.batches: dict[str, BatchRecord] = {}
        self.messages: dict[str, MessageRecord] = {}
        self.held: dict[tuple[ProviderName, str], list[dict[str, Any]]] = {}  # under provider ids
        self.held_for_messages: dict[tuple[ProviderName, str], list[dict[str, Any]]] = {}  # by our message id
        self.hold_marks: dict[str, int] = {}  # batch id (or "@<provider>") -> when a receipt was last held for it
        self.earlier_attempts: dict[tuple[ProviderName, str], str] = {}  # first attempt -> message id (resent)
        self.deadlines: dict[tuple[str, str], DeadlineEntry] = {}  # (bucket, key) -> entry, as the table holds them
        self.put_calls = 0
        self._move_lock = threading.Lock()  # the conditional status moves are atomic, as DynamoDB's are

    def begin_batch(self, batch: BatchRecord) -> BatchRecord | None:
        found = self.batches.get(batch.batch_id)
        if found is not None and not (batch.body_hash is not None and found.refused_whole):
            return found
        self.batches[batch.batch_id] = batch.model_copy(deep=True)
        return None

    def finish_batch(self, batch: BatchRecord) -> None:
        self.batches[batch.batch_id] = batch.model_copy(deep=True)

    def take_over_batch(self, batch: BatchRecord, previous: BatchRecord) -> bool:
        found = self.batches.get(batch.batch_id)
        if found is None or found.state != previous.state or found.resumes != previous.resumes:
            return False
        self.batches[batch.batch_id] = batch.model_copy(deep=True)
        return True

    def put_messages(self, messages: Sequence[MessageRecord], deadlines: Sequence[DeadlineEntry] = ()) -> None:
        self.put_calls += 1
        for m in messages:
            self.messages[m.id] = m.model_copy(deep=True)
        for entry in deadlines:
            self.deadlines[entry.bucket, entry.key] = entry

    def put_if_sending(self, messages: Sequence[MessageRecord]) -> set[str]:
        refused = set()
        with self._move_lock:
            for m in messages:
                stored = self.messages.get(m.id)
                if stored is None or stored.status is not Status.SENDING:
                    refused.add(m.id)
                else:
                    self.messages[m.id] = m.model_copy(deep=True)
        return refused

    def move_status(
        self, message_ids: Sequence[str], *, from_statuses: Collection[Status], to: Status, now: datetime, step: bool
    ) -> tuple[list[MessageRecord], dict[str, str]]:
        """As `aws.dynamodb_status_moves.move_each`: the records moved now, and the status of each other one found."""
        moved: list[MessageRecord] = []
        others: dict[str, str] = {}
        with self._move_lock:
            for message_id in message_ids:
                record = self.messages.get(message_id)
                if record is None:
                    continue
                if record.status not in from_statuses:
                    others[message_id] = record.status.value
                    continue
                events = list(record.events or [])
                if step:
                    events.append(HistoryStep("canceled", to, to.value, iso(now)).to_item())
                after = record.model_copy(update={"status": to, "updated_at": iso(now), "events": events or None})
                self.messages[message_id] = after
                moved.append(after)
        return moved, others

    def cancel_unsent(self, message_ids: Sequence[str], *, now: datetime) -> tuple[list[MessageRecord], dict[str, str]]:
        return self.move_status(
            message_ids, from_statuses=(Status.ACCEPTED, Status.QUEUED), to=Status.CANCELED, now=now, step=True
        )

    def mark_held(self, message_ids: Sequence[str], *, held_key: str) -> None:
        with self._move_lock:
            for message_id in message_ids:
                record = self.messages.get(message_id)
                if record is None or record.status not in (Status.ACCEPTED, Status.QUEUED):
                    continue
                if record.held_key is None or not record.held_key.startswith(held_key):
                    self.messages[message_id] = record.model_copy(update={"held_key": held_key})

    def get_message(self, message_id: str) -> tuple[MessageRecord, BatchRecord | None] | None:
        record = self.messages.get(message_id)
        return None if record is None else (record, self.batches.get(record.batch_id))

    def get_messages(self, message_ids: Sequence[str]) -> dict[str, MessageRecord]:
        return {i: self.messages[i].model_copy(deep=True) for i in message_ids if i in self.messages}

    def get_batch(self, batch_id: str) -> BatchRecord | None:
        return self.batches.get(batch_id)

    def open_accepts(self, *, due_by: int) -> list[str]:
        return sorted(
            b.batch_id
            for b in self.batches.values()
            if b.state in UNSETTLED_STATES and b.settle_after is not None and b.settle_after <= due_by
        )

    def list_batch_messages(
        self, batch_id: str, *, limit: int, after: str | None
    ) -> tuple[list[MessageRecord], str | None]:
        ids = sorted(m.id for m in self.messages.values() if m.batch_id == batch_id)
        if after is not None:
            parts = split_message_id(after)  # refused as the adapter refuses it
            if parts is None or parts[0] != batch_id:
                raise InvalidCursor()
            ids = [i for i in ids if i > after]
        page = ids[:limit]
        return [self.messages[i] for i in page], (page[-1] if len(ids) > limit else None)

    # ---- MessageFinder ----

    def find_messages(
        self, lookup: MessageLookup, *, limit: int, cursor: str | None
    ) -> tuple[list[MessageRecord], dict[str, BatchRecord], str | None]:
        """As the indexes order them: newest first (created_at), then by key; the cursor is the last message's id,
        prefixed with the lookup so a cursor of another lookup is refused as the adapter refuses it."""
        prefix = f"{lookup.field}={lookup.value}|"
        found = sorted(
            (m for m in self.messages.values() if getattr(m, lookup.field) == lookup.value),
            key=lambda m: (m.created_at, m.id),
            reverse=True,
        )
        if cursor is not None:
            if not cursor.startswith(prefix):
                raise InvalidCursor("the cursor belongs to another query")
            last = cursor.removeprefix(prefix)
            ids = [m.id for m in found]
            if last not in ids:
                raise InvalidCursor("not a cursor this API gave")
            found = found[ids.index(last) + 1 :]
        page = found[:limit]
        batches = {m.batch_id: self.batches[m.batch_id] for m in page if m.batch_id in self.batches}
        return page, batches, (prefix + page[-1].id if len(found) > limit else None)

    # ---- ReceiptStore ----

    def message_for_provider_ref(self, provider: ProviderName, provider_message_id: str) -> MessageRecord | None:
        return self._provider_ref(provider, provider_message_id)

    def _provider_ref(self, provider: ProviderName, provider_message_id: str) -> MessageRecord | None:
        return next(
            (
                m
                for m in self.messages.values()
                if m.provider == provider and m.provider_message_id == provider_message_id
            ),
            None,
        )

    def message_id_for_provider_ref(self, provider: ProviderName, provider_message_id: str) -> str | None:
        found = self._provider_ref(provider, provider_message_id)
        return None if found is None else found.id

    def read_messages(self, message_ids: Sequence[str]) -> dict[str, MessageRecord]:
        return self.get_messages(message_ids)

    def find_recipients(self, echo: EchoRange, to: str | None) -> list[MessageRecord]:
        if to is None:  # as the DynamoDB store: an echo without the number names nobody
            return []
        last = echo.last_seq if echo.first_seq == echo.last_seq else 99_999
        found = (self.messages.get(message_id(echo.batch_id, seq)) for seq in range(echo.first_seq, last + 1))
        return [record for record in found if record is not None and record.to == to]

    def reload(self, message_id: str) -> MessageRecord | None:
        record = self.messages.get(message_id)
        return None if record is None else record.model_copy(deep=True)

    def save_delivery(self, record: MessageRecord, *, expected_version: int) -> bool:
        stored = self.messages.get(record.id)
        if stored is None or stored.version != expected_version:
            return False
        self.messages[record.id] = record.model_copy(deep=True)
        return True

    def start_resend(self, record: MessageRecord, *, expected_version: int, earlier: MessageRecord) -> bool:
        stored = self.messages.get(record.id)
        if (
            stored is None
            or stored.version != expected_version
            or (stored.provider, stored.provider_message_id) != (earlier.provider, earlier.provider_message_id)
            or earlier.provider_message_id is None
        ):
            return False
        self.messages[record.id] = record.model_copy(deep=True)
        self.earlier_attempts[(earlier.provider, earlier.provider_message_id)] = record.id
        return True

    def message_for_earlier_attempt(self, provider: ProviderName, provider_message_id: str) -> MessageRecord | None:
        found = self.earlier_attempts.get((provider, provider_message_id))
        return None if found is None else self.reload(found)

    def hold_receipt(
        self, provider: ProviderName, provider_message_id: str, event: dict[str, Any], message_id: str | None
    ) -> bool:
        held = (
            self.held_for_messages.setdefault((provider, message_id), [])
            if message_id is not None
            else self.held.setdefault((provider, provider_message_id), [])
        )
        if any(e["id"] == event["id"] for e in held):
            return False
        held.append(event)
        parts = split_message_id(message_id) if message_id is not None else None
        mark = parts[0] if parts is not None else f"@{provider}"
        self.hold_marks[mark] = max(self.hold_marks.get(mark, 0), int(time.time()))
        return True

    def holds_since(self, provider: ProviderName, batch_ids: Collection[str], since: int) -> bool:
        return any(self.hold_marks.get(mark, -1) >= since for mark in [*batch_ids, f"@{provider}"])

    def held_receipts(
        self, provider: ProviderName, message_ids: Sequence[str], provider_message_ids: Sequence[str]
    ) -> HeldReceipts:
        return HeldReceipts(
            {
                m: list(self.held_for_messages[(provider, m)])
                for m in message_ids
                if (provider, m) in self.held_for_messages
            },
            {k: list(self.held[(provider, k)]) for k in provider_message_ids if (provider, k) in self.held},
        )

    def batch_tally(self, batch_id: str) -> BatchTally:
        # Every record counted at once, as the stream would have counted it.
        counts: dict[str, int] = defaultdict(int)
        created: dict[str, int] = defaultdict(int)
        for m in self.messages.values():
            if m.batch_id == batch_id:
                counts[m.status] += 1
                created[creation_status(m)] += 1
        return BatchTally(dict(counts), dict(created))


class MemoryQueues:
    def __init__(self) -> None:
        self.sent: dict[ProviderName, list[DispatchPack]] = defaultdict(list)
        self.delays: list[int] = []
        self.fail_for: set[ProviderName] = set()

    def send_packs(self, provider: ProviderName, packs: Sequence[DispatchPack], *, delay_seconds: int = 0) -> None:
        if provider in self.fail_for:
            raise RuntimeError("queue unavailable")
        self.sent[provider].extend(packs)
        self.delays.extend([delay_seconds] * len(packs))


#: The operation each provider's scripted calls count against (real names: the default rate limits know them).
SCRIPTED_OPERATIONS = {
    ProviderName.ALIYUN: "SendMessageToGlobe",
    ProviderName.TENCENT: "SendMultiGlobalSms",
    ProviderName.HUAWEI: "batchSendDiffSms",
}


class ScriptedProvider:
    """Accepts everything, unless `answer` says otherwise for a message.

    `plan`: one call of `operation` per send, or one call per message with `one_call_per_message`; `singles`
    makes those calls splittable (as Alibaba's batch calls are). Each call made is recorded in `calls` (its
    messages) and `operations`."""

    def __init__(
        self,
        name: ProviderName = ProviderName.ALIYUN,
        max_recipients_per_call: int = 1000,
        answer: Callable[[OutboundSms], ProviderError | None] | None = None,
        operation: str | None = None,
        singles: str | None = None,
        one_call_per_message: bool = False,
    ) -> None:
        self.name = name
        self.max_recipients_per_call = max_recipients_per_call
        self.longest_call_seconds = 0.0  # answers at once
        self.operation = operation or SCRIPTED_OPERATIONS[name]
        self.singles = singles
        self.one_call_per_message = one_call_per_message
        self.calls: list[list[OutboundSms]] = []
        self.operations: list[str] = []
        self._answer = answer or (lambda _m: None)

    def check(self, message: OutboundSms) -> InvalidProviderRequest | None:
        return None

    def plan(self, messages: Sequence[OutboundSms]) -> list[PlannedCall]:
        if not messages:
            return []
        if self.one_call_per_message:
            return [PlannedCall(self.operation, (i,), self.singles) for i in range(len(messages))]
        return [PlannedCall(self.operation, tuple(range(len(messages))), self.singles)]

    def send(self, messages: Sequence[OutboundSms], *, plan: Sequence[PlannedCall] | None = None) -> list[SendOutcome]:
        by_index: dict[int, SendOutcome] = {}
        for call in plan if plan is not None else self.plan(messages):
            chunk = [messages[i] for i in call.indexes]
            self.calls.append(chunk)
            self.operations.append(call.operation)
            by_index.update(zip(call.indexes, self._outcomes(chunk), strict=True))
        return [by_index[i] for i in range(len(messages))]

    def _outcomes(self, messages: Sequence[OutboundSms]) -> list[SendOutcome]:
        outcomes = []
        for m in messages:
            error = self._answer(m)
            outcomes.append(
                SendOutcome(message_id=m.message_id, error=error)
                if error
                else SendOutcome(message_id=m.message_id, provider_message_id=f"pm-{m.message_id}")
            )
        return outcomes


class MemoryRateLimiter:
    """`RateLimiter` in memory: `limits` calls per operation per second, all-or-nothing, thread-safe. Records each
    grant (`granted`: second, permits) and each refusal (`refused`)."""

    def __init__(self, limits: Mapping[str, int]) -> None:
        self.limits = dict(limits)
        self.used: Counter[tuple[str, int]] = Counter()
        self.granted: list[tuple[int, dict[str, int]]] = []
        self.refused: list[tuple[int, dict[str, int]]] = []
        self._lock = threading.Lock()

    def limit(self, operation: str) -> int:
        return self.limits[operation]

    def free(self, operations: Collection[str], *, second: int) -> dict[str, int]:
        with self._lock:
            return {op: max(0, self.limits[op] - self.used[(op, second)]) for op in operations}

    def acquire(self, permits: Mapping[str, int], *, second: int) -> bool:
        with self._lock:
            if any(self.used[(op, second)] + n > self.limits[op] for op, n in permits.items()):
                self.refused.append((second, dict(permits)))
                return False
            for op, n in permits.items():
                self.used[(op, second)] += n
            self.granted.append((second, dict(permits)))
            return True


class MemoryDeadlines:
    """`ReceiptDeadlines` over a `MemoryStore`'s deadline entries and records."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.mark: int | None = None
        self.queried: list[str] = []

    def due(self, bucket: str, *, after: int, until: int) -> Iterator[DeadlineEntry]:
        self.queried.append(bucket)
        found = [e for (b, _), e in self.store.deadlines.items() if b == bucket and after < e.due_at <= until]
        yield from sorted(found, key=lambda e: e.key)

    def waiting(self, message_ids: Sequence[str], *, until: int) -> list[MessageRecord]:
        found = (self.store.messages.get(m) for m in message_ids)
        return [r.model_copy(deep=True) for r in found if r is not None and is_due(r, until)]

    def reschedule(self, record: MessageRecord, *, due_at: int, tries: int, failures: int = 0) -> bool:
        entry = DeadlineEntry(due_at, (record.id,))
        self.store.deadlines[entry.bucket, entry.key] = entry
        stored = self.store.messages.get(record.id)
        if stored is None or stored.version != record.version or stored.status.value != "SUBMITTED":
            return False
        update = {
            "receipt_due_at": due_at,
            "reconcile_tries": tries,
            "query_failures": failures,
            "version": stored.version + 1,
        }
        self.store.messages[record.id] = stored.model_copy(update=update)
        return True

    def watermark(self) -> int | None:
        return self.mark

    def set_watermark(self, done_until: int) -> None:
        self.mark = done_until


class MemoryWebhooks:
    def __init__(self) -> None:
        self.sent: list[WebhookDelivery] = []
        self.failing = False

    def send_webhooks(self, deliveries: Sequence[WebhookDelivery]) -> None:
        if self.failing:
            raise RuntimeError("queue unavailable")
        self.sent.extend(deliveries)


class MemoryClaims:
    """PackClaims with a clock the test controls through `now`."""

    def __init__(self) -> None:
        self.state: dict[str, str] = {}
        self.lease_until: dict[str, float] = {}
        self.requeues: dict[str, Requeued] = {}
        self.dead_lettered_at: dict[str, datetime] = {}
        self.redriving: dict[str, datetime] = {}

    def claim(self, pack_id: str, *, now: datetime, lease_seconds: int) -> Claim:
        state = self.state.get(pack_id)
        moment = now.timestamp()
        if state is None or state in ("OPEN", "DEAD"):
            self.state[pack_id], self.lease_until[pack_id] = "CLAIMED", moment + lease_seconds
            self.requeues.pop(pack_id, None)  # each claim starts with none noted (the adapter removes them)
            return Claim.REDRIVEN if state == "DEAD" or self._redriving(pack_id) else Claim.CLAIMED
        if state == "DONE":
            return Claim.DONE
        if state == "CANCELED":
            return Claim.CANCELED
        if self.lease_until[pack_id] > moment:
            return Claim.BUSY
        self.lease_until[pack_id] = moment + lease_seconds
        return Claim.STALE

    def release(self, pack_id: str, *, dead_lettered_at: datetime | None = None) -> None:
        self.state[pack_id] = "OPEN" if dead_lettered_at is None else "DEAD"
        if dead_lettered_at is not None:
            self.dead_lettered_at[pack_id] = dead_lettered_at

    def cancel(self, pack_id: str, *, now: datetime) -> bool:
        if self.state.get(pack_id) in (None, "OPEN", "DEAD", "CANCELED"):
            self.state[pack_id] = "CANCELED"
            return True
        return False

    def finish(self, pack_id: str) -> None:
        self.state[pack_id] = "DONE"

    def take_hold(self, hold_id: str, *, now: datetime) -> bool:
        if self.state.get(hold_id) in (None, "RELEASED"):
            self.state[hold_id] = "RELEASED"
            return True
        return False

    def hold_state(self, hold_id: str) -> str | None:
        return self.state.get(hold_id)

    def record_requeued(self, pack_id: str, requeued: Requeued) -> None:
        self.requeues[pack_id] = requeued

    def mark_redriving(self, pack_id: str) -> datetime | None:
        if pack_id not in self.dead_lettered_at:
            return None
        self.redriving[pack_id] = self.dead_lettered_at[pack_id]
        return self.redriving[pack_id]

    def notes(self, pack_id: str) -> ClaimNotes:
        return ClaimNotes(
            self.requeues.get(pack_id, Requeued()), self._redriving(pack_id), self.dead_lettered_at.get(pack_id)
        )

    def _redriving(self, pack_id: str) -> datetime | None:
        marked = self.redriving.get(pack_id)
        return marked if marked is not None and marked == self.dead_lettered_at.get(pack_id) else None


class MemoryBreakers:
    """CircuitBreakers in memory."""

    def __init__(self) -> None:
        self.states: dict[ProviderName, BreakerState] = {}

    def state(self, provider: ProviderName) -> BreakerState:
        return self.states.get(provider, BreakerState())

    def record_failure(
        self, provider: ProviderName, *, now: datetime, failures_to_open: int, cooldown_seconds: int
    ) -> BreakerState:
        failures = self.state(provider).failures + 1
        open_until = self.state(provider).open_until
        if failures >= failures_to_open:
            open_until = int(now.timestamp()) + cooldown_seconds
        self.states[provider] = BreakerState(failures, open_until)
        return self.states[provider]

    def record_success(self, provider: ProviderName) -> None:
        self.states[provider] = BreakerState()


class MemoryTemplateStore:
    """`TemplateStore` in memory; `fail` makes every load raise (an unreadable table)."""

    def __init__(self) -> None:
        self.seeded = False
        self.items: dict[str, StoredTemplate] = {}
        self.loads = 0
        self.fail = False

    def load(self) -> StoredTemplates:
        self.loads += 1
        if self.fail:
            raise ConnectionError("table unreachable")
        return StoredTemplates(self.seeded, tuple(self.items[k] for k in sorted(self.items)))

    def seed(self, templates: Sequence[StoredTemplate]) -> None:
        if not self.seeded:
            self.items.update({t.template_id: t for t in templates})
            self.seeded = True

    def put(self, template: StoredTemplate) -> bool:
        created = template.template_id not in self.items
        self.items[template.template_id] = template
        return created

    def delete(self, template_id: str) -> bool:
        return self.items.pop(template_id, None) is not None


class MemorySpendReleases:
    """Once per message id, as the DynamoDB ledger's markers make it."""

    def __init__(self) -> None:
        self.given_back: dict[tuple[str, str], Decimal] = {}
        self.released: set[str] = set()
        self.reservations: dict[str, Reservation] = {}  # batch id -> what it reserved (set by a test)
        self.charges: dict[Charge, Decimal] = {}  # made once each (`charge_once`)
        self.carried: dict[Charge, Decimal] = {}
        self.given_back_charges: set[Charge] = set()  # `uncharge_once`
        self.charged: dict[tuple[str, str], Decimal] = {}  # (month, scope) -> added by charges
        self.calls = 0

    def reservation(self, batch_id: str) -> Reservation | None:
        return self.reservations.get(batch_id)

    def release_once(
        self, month: str, scopes: Collection[str], amounts: Mapping[str, Decimal], expires_at: int | None
    ) -> Decimal:
        self.calls += 1
        fresh = {m: a for m, a in amounts.items() if m not in self.released}
        self.released |= set(fresh)
        total = sum(fresh.values(), Decimal(0))
        for scope in scopes:
            self.given_back[(month, scope)] = self.given_back.get((month, scope), Decimal(0)) + total
        return total

    def charge_once(
        self,
        month: str,
        scopes: Collection[str],
        amounts: Mapping[Charge, Decimal],
        expires_at: int | None,
        carried: Mapping[Charge, Decimal] | None = None,
    ) -> Decimal:
        self.calls += 1
        fresh = {c: a for c, a in amounts.items() if a and (c not in self.charges or c in self.given_back_charges)}
        self.charges.update(fresh)
        self.given_back_charges -= set(fresh)
        self.carried.update({c: a for c, a in (carried or {}).items() if c in fresh})
        return self._add_charged(month, scopes, sum(fresh.values(), Decimal(0)))

    def uncharge_once(self, month: str, scopes: Collection[str], charges: Collection[Charge]) -> Decimal:
        self.calls += 1
        back = {c: self.charges[c] for c in charges if c in self.charges and c not in self.given_back_charges}
        self.given_back_charges |= set(back)
        total = sum(back.values(), Decimal(0))
        self._add_charged(month, scopes, -total)
        return total

    def recharge_given_back(self, month: str, scopes: Collection[str], charges: Collection[Charge]) -> Decimal:
        self.calls += 1
        again = {c: self.charges[c] for c in charges if c in self.given_back_charges}
        self.given_back_charges -= set(again)
        return self._add_charged(month, scopes, sum(again.values(), Decimal(0)))

    def batch_charges(self, batch_id: str) -> list[ChargeMade]:
        return [
            ChargeMade(c, a, self.carried.get(c), c in self.given_back_charges)
            for c, a in self.charges.items()
            if c.message_id.rsplit(".", 1)[0] == batch_id
        ]

    def _add_charged(self, month: str, scopes: Collection[str], total: Decimal) -> Decimal:
        for scope in scopes:
            self.charged[(month, scope)] = self.charged.get((month, scope), Decimal(0)) + total
        return total

    def recharge_once(self, month: str, scopes: Collection[str], amounts: Mapping[str, Decimal]) -> Decimal:
        self.calls += 1
        back = {m: a for m, a in amounts.items() if m in self.released and a > 0}
        self.released -= set(back)
        total = sum(back.values(), Decimal(0))
        for scope in scopes:
            self.given_back[(month, scope)] = self.given_back.get((month, scope), Decimal(0)) - total
        return total


class MemoryScheduleStore:
    """`ScheduleStore` over a `MemoryStore`'s records; the conditional moves are atomic (one lock)."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.held: dict[ReleaseRef, dict[str, DispatchPack]] = {}
        self.index: dict[str, set[ReleaseRef]] = {}
        self.cursor: SweepCursor | None = None

    def hold_packs(self, ref: ReleaseRef, packs: Sequence[DispatchPack], *, expires_at: int) -> None:
        self.held.setdefault(ref, {}).update({p.pack_id: p for p in packs})

    def held_packs(self, ref: ReleaseRef) -> list[DispatchPack]:
        return [p for _, p in sorted(self.held.get(ref, {}).items())]

    def index_release(self, bucket: str, ref: ReleaseRef, *, expires_at: int) -> None:
        self.index.setdefault(bucket, set()).add(ref)

    def indexed_releases(
        self, bucket: str, *, after: ReleaseRef | None = None, limit: int
    ) -> tuple[list[ReleaseRef], bool]:
        entries = sorted(self.index.get(bucket, set()), key=lambda r: (r.send_at, r.batch_id))
        if after is not None:
            entries = [r for r in entries if (r.send_at, r.batch_id) > (after.send_at, after.batch_id)]
        return entries[:limit], len(entries) > limit

    def sweep_cursor(self) -> SweepCursor | None:
        return self.cursor

    def advance_sweep_cursor(self, old: SweepCursor | None, new: SweepCursor) -> bool:
        if self.cursor != old:
            return False
        self.cursor = new
        return True

    def claim_for_release(self, message_ids: Sequence[str], *, now: datetime) -> dict[str, str]:
        moved, others = self.store.move_status(
            message_ids, from_statuses=(Status.SCHEDULED,), to=Status.QUEUED, now=now, step=False
        )
        return {**{r.id: r.status.value for r in moved}, **others}

    def cancel_scheduled(
        self, message_ids: Sequence[str], *, now: datetime
    ) -> tuple[list[MessageRecord], dict[str, str]]:
        return self.store.move_status(
            message_ids, from_statuses=(Status.SCHEDULED,), to=Status.CANCELED, now=now, step=True
        )


class MemoryReleases:
    def __init__(self) -> None:
        self.sent: list[tuple[ReleaseRef, int]] = []

    def send_releases(self, refs: Sequence[ReleaseRef], *, delay_seconds: int) -> None:
        assert 0 <= delay_seconds <= MAX_SQS_DELAY_SECONDS  # what SQS allows
        self.sent += [(ref, delay_seconds) for ref in refs]


def memory_dispatch_deps(
    store: MemoryStore | None = None, provider: ScriptedProvider | None = None, **fields: Any
) -> DispatchDeps:
    """A dispatcher on in-memory fakes: `store` (its receipts too), `provider`, and any other field of DispatchDeps."""
    store = store if store is not None else MemoryStore()
    return DispatchDeps(
        provider=provider or ScriptedProvider(),
        store=store,
        claims=fields.pop("claims", None) or MemoryClaims(),
        queues=fields.pop("queues", None) or MemoryQueues(),
        receipts=fields.pop("receipts", None) or store,
        webhooks=fields.pop("webhooks", None) or MemoryWebhooks(),
        **fields,
    )
