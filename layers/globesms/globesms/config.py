"""Settings from the environment, validated once per process."""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic import BaseModel, Field

from globesms.dispatch.circuit_breaker import BreakerPolicy
from globesms.dispatch.unknown_outcomes import UnknownOutcomeAction, UnknownOutcomePolicy
from globesms.models.outbound import ProviderName


class Settings(BaseModel):
    table_name: str = Field(min_length=1)
    queue_urls: dict[ProviderName, str]
    webhook_queue_url: str = ""
    # Powertools idempotency records of `Idempotency-Key` / `idempotency_key` (API and SQS intake only).
    idempotency_table: str = ""
    retention_days: int = Field(default=90, ge=1, le=3650)
    # The provider queues' maxReceiveCount: on the last receive a failing pack is marked FAILED before it is
    # left to go to the dead-letter queue, so its records say so.
    max_receive_count: int = Field(default=5, ge=1)
    # What happens to a message whose outcome stays unknown, and when a provider is down: docs/pipeline.md,
    # "What happens to a message in each failure case".
    unknown_outcome_policy: UnknownOutcomeAction = UnknownOutcomeAction.FAIL
    unknown_outcome_window_seconds: int = Field(default=900, ge=60, le=86_400)
    breaker_failures: int = Field(default=5, ge=1)
    breaker_cooldown_seconds: int = Field(default=60, ge=1, le=3600)
    # GET /v1/docs and /v1/openapi.json answer only requests that came with an API key (template DocsRequireApiKey).
    docs_require_api_key: bool = False

    def unknown_outcomes(self) -> UnknownOutcomePolicy:
        return UnknownOutcomePolicy(self.unknown_outcome_window_seconds, self.unknown_outcome_policy)

    def breaker_policy(self) -> BreakerPolicy:
        return BreakerPolicy(self.breaker_failures, self.breaker_cooldown_seconds)

    @classmethod
    def from_environment(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        return cls(
            table_name=env.get("GLOBESMS_TABLE_NAME", ""),
            queue_urls={
                p: env[f"GLOBESMS_{p.upper()}_QUEUE_URL"]
                for p in ProviderName
                if env.get(f"GLOBESMS_{p.upper()}_QUEUE_URL")
            },
            webhook_queue_url=env.get("GLOBESMS_WEBHOOK_QUEUE_URL", ""),
            idempotency_table=env.get("GLOBESMS_IDEMPOTENCY_TABLE", ""),
            retention_days=int(env.get("GLOBESMS_RETENTION_DAYS", "90")),
            max_receive_count=int(env.get("GLOBESMS_MAX_RECEIVE_COUNT", "5")),
            unknown_outcome_policy=env.get("GLOBESMS_UNKNOWN_OUTCOME_POLICY", "fail"),
            unknown_outcome_window_seconds=int(env.get("GLOBESMS_UNKNOWN_OUTCOME_WINDOW_SECONDS", "900")),
            breaker_failures=int(env.get("GLOBESMS_BREAKER_FAILURES", "5")),
            breaker_cooldown_seconds=int(env.get("GLOBESMS_BREAKER_COOLDOWN_SECONDS", "60")),
            docs_require_api_key=env.get("GLOBESMS_DOCS_REQUIRE_API_KEY") or "false",
        )


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.from_environment()
