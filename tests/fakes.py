"""In-memory stand-ins for the ports, for logic tests without I/O."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

from globesms.errors import ProviderError
from globesms.models.outbound import OutboundSms, ProviderName, SendOutcome
from globesms.models.packs import DispatchPack
from globesms.models.records import BatchRecord, MessageRecord


class MemoryStore:
    def __init__(self) -> None:
        self.batches: dict[str, BatchRecord] = {}
        self.messages: dict[str, MessageRecord] = {}
        self.put_calls = 0

    def begin_batch(self, batch: BatchRecord) -> BatchRecord | None:
        if batch.batch_id in self.batches:
            return self.batches[batch.batch_id]
        self.batches[batch.batch_id] = batch.model_copy(deep=True)
        return None

    def finish_batch(self, batch: BatchRecord) -> None:
        self.batches[batch.batch_id] = batch.model_copy(deep=True)

    def existing_message_ids(self, batch_id: str) -> set[str]:
        return {m.id for m in self.messages.values() if m.batch_id == batch_id}

    def put_messages(self, messages: Sequence[MessageRecord]) -> None:
        self.put_calls += 1
        for m in messages:
            self.messages[m.id] = m.model_copy(deep=True)

    def get_message(self, message_id: str) -> tuple[MessageRecord, BatchRecord | None] | None:
        record = self.messages.get(message_id)
        return None if record is None else (record, self.batches.get(record.batch_id))

    def get_batch(self, batch_id: str) -> BatchRecord | None:
        return self.batches.get(batch_id)

    def list_batch_messages(
        self, batch_id: str, *, limit: int, after: str | None
    ) -> tuple[list[MessageRecord], str | None]:
        ids = sorted(m.id for m in self.messages.values() if m.batch_id == batch_id)
        if after is not None:
            ids = [i for i in ids if i > after]
        page = ids[:limit]
        return [self.messages[i] for i in page], (page[-1] if len(ids) > limit else None)

    def count_batch_statuses(self, batch_id: str) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for m in self.messages.values():
            if m.batch_id == batch_id:
                counts[m.status] += 1
        return dict(counts)


class MemoryQueues:
    def __init__(self) -> None:
        self.sent: dict[ProviderName, list[DispatchPack]] = defaultdict(list)
        self.fail_for: set[ProviderName] = set()

    def send_packs(self, provider: ProviderName, packs: Sequence[DispatchPack]) -> None:
        if provider in self.fail_for:
            raise RuntimeError("queue unavailable")
        self.sent[provider].extend(packs)


class ScriptedProvider:
    """Accepts everything, unless `answer` says otherwise for a message."""

    def __init__(
        self,
        name: ProviderName = ProviderName.ALIYUN,
        max_recipients_per_call: int = 1000,
        answer: Callable[[OutboundSms], ProviderError | None] | None = None,
    ) -> None:
        self.name = name
        self.max_recipients_per_call = max_recipients_per_call
        self.calls: list[list[OutboundSms]] = []
        self._answer = answer or (lambda _m: None)

    def send(self, messages: Sequence[OutboundSms]) -> list[SendOutcome]:
        self.calls.append(list(messages))
        outcomes = []
        for m in messages:
            error = self._answer(m)
            outcomes.append(
                SendOutcome(message_id=m.message_id, error=error)
                if error
                else SendOutcome(message_id=m.message_id, provider_message_id=f"pm-{m.message_id}")
            )
        return outcomes
