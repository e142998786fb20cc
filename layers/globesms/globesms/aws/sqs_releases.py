"""`ReleaseQueue` on SQS: one message per release (`{"batch_id", "send_at"}`), delayed to its send_at."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from globesms.aws import clients
from globesms.aws.sqs_batches import SendFailed, send_in_batches
from globesms.ports import ReleaseRef


def release_body(ref: ReleaseRef) -> str:
    return json.dumps({"batch_id": ref.batch_id, "send_at": ref.send_at})


class SqsReleaseQueue:
    def __init__(self, queue_url: str, client_factory: Callable[[], Any] = clients.sqs) -> None:
        self._url = queue_url
        self._client = client_factory

    def send_releases(self, refs: Sequence[ReleaseRef], *, delay_seconds: int) -> None:
        if not self._url:
            raise SendFailed("no release queue configured (GLOBESMS_RELEASE_QUEUE_URL)")
        send_in_batches(
            self._client(), self._url, [release_body(r) for r in refs], noun="release", delay_seconds=delay_seconds
        )
