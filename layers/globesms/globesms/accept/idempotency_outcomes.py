"""What a client idempotency key's run ends in (`globesms.accept.idempotency.run_once`), apart from its
Powertools machinery: the intake imports these without loading Powertools idempotency (and boto3 with it)."""

from __future__ import annotations

from dataclasses import dataclass

from globesms.models.views import AcceptResponse

#: How long a client idempotency key's answer is kept: a retry with the key within it gets the first answer again.
WINDOW_SECONDS = 24 * 60 * 60


class IdempotencyUnavailable(RuntimeError):
    """A key was given but no idempotency table is configured: refusing beats accepting without the guarantee."""


class KeyReused(ValueError):
    def __init__(self) -> None:
        super().__init__("this idempotency key was used with a different body within 24 hours")


class KeyInProgress(RuntimeError):
    def __init__(
        self, message: str = "a request with this idempotency key is still being processed; retry in a few seconds"
    ) -> None:
        super().__init__(message)


@dataclass(frozen=True)
class Outcome:
    answer: AcceptResponse
    replayed: bool  # the first answer to this key, given again (nothing was written or sent)


class BatchDoneBefore(Exception):
    """The batch this request names (its batch id, or the one its key and body derive) was accepted before: `answer`
    is that batch as it stands, given as a replay. Reached when a key's 24 h record has expired, or an intake body
    is delivered again; nothing is written or sent."""

    def __init__(self, answer: AcceptResponse) -> None:
        super().__init__(f"batch {answer.batch_id} was accepted before")
        self.answer = answer
