"""`PackQueues` on SQS: one standard queue per provider."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from globesms.aws import clients
from globesms.limits import SQS_MESSAGE_BYTES
from globesms.models.outbound import ProviderName
from globesms.models.packs import DispatchPack

ENTRIES_PER_CALL = 10  # SendMessageBatch's limit


class SendFailed(RuntimeError):
    pass


class SqsPackQueues:
    def __init__(self, queue_urls: dict[ProviderName, str], client_factory: Callable[[], Any] = clients.sqs) -> None:
        self._urls = queue_urls
        self._client = client_factory

    def send_packs(self, provider: ProviderName, packs: Sequence[DispatchPack]) -> None:
        url = self._urls.get(provider)
        if url is None:
            raise SendFailed(f"no queue configured for provider {provider}")
        for entries in _calls([p.model_dump_json(exclude_none=True) for p in packs]):
            self._send(url, entries)

    def _send(self, url: str, bodies: list[str], attempts: int = 3) -> None:
        pending = {str(i): body for i, body in enumerate(bodies)}
        for _ in range(attempts):
            response = self._client().send_message_batch(
                QueueUrl=url, Entries=[{"Id": i, "MessageBody": b} for i, b in pending.items()]
            )
            failed = response.get("Failed") or []
            if not failed:
                return
            if any(f.get("SenderFault") for f in failed):
                raise SendFailed(f"SQS refused {len(failed)} pack(s): {failed[0].get('Code')}")
            pending = {f["Id"]: pending[f["Id"]] for f in failed}
        raise SendFailed(f"SQS failed {len(pending)} pack(s) after {attempts} attempts")


def _calls(bodies: list[str]) -> list[list[str]]:
    """Group bodies into SendMessageBatch calls: at most 10 entries and SQS_MESSAGE_BYTES per call."""
    calls: list[list[str]] = []
    current: list[str] = []
    size = 0
    for body in bodies:
        length = len(body.encode())
        if current and (len(current) == ENTRIES_PER_CALL or size + length > SQS_MESSAGE_BYTES):
            calls.append(current)
            current, size = [], 0
        current.append(body)
        size += length
    if current:
        calls.append(current)
    return calls
