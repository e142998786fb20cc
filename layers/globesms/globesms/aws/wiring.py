"""The adapters each handler uses, built once per process from the settings (handlers share this, not copies)."""

from __future__ import annotations

import sys
from functools import cache
from typing import TYPE_CHECKING

from globesms import hooks
from globesms.config import (
    ConsentSettings,
    ConsentTableSettings,
    ProviderQueueSettings,
    ReleaseQueueSettings,
    RepliesSettings,
    RetentionSettings,
    RouteStatsSettings,
    TableSettings,
    TemplatesSettings,
    WebhookQueueSettings,
    environment,
    load_settings,
    settings,
)
from globesms.observability import emit_pumping_suspected

# Each adapter is imported by the factory that builds it, not here: every handler imports this module, and one
# that builds two adapters (the status counts, the scheduler) need not import the other fourteen and the models
# they serialise (the cold start figure in docs/performance.md).
if TYPE_CHECKING:
    from globesms.aws.dynamodb_breakers import DynamoDBCircuitBreakers
    from globesms.aws.dynamodb_claims import DynamoDBPackClaims
    from globesms.aws.dynamodb_consent import DynamoDBConsentStore
    from globesms.aws.dynamodb_counts import DynamoDBStatusCounts
    from globesms.aws.dynamodb_deadlines import DynamoDBReceiptDeadlines
    from globesms.aws.dynamodb_lookup import DynamoDBMessageFinder
    from globesms.aws.dynamodb_rate_limiter import DynamoDBRateLimiter
    from globesms.aws.dynamodb_receipts import DynamoDBReceiptStore
    from globesms.aws.dynamodb_route_stats import DynamoDBRouteStats
    from globesms.aws.dynamodb_schedule import DynamoDBScheduleStore
    from globesms.aws.dynamodb_spend import DynamoDBSpendLedger
    from globesms.aws.dynamodb_store import DynamoDBMessageStore
    from globesms.aws.dynamodb_templates import DynamoDBTemplateStore
    from globesms.aws.sqs_queues import SqsPackQueues, SqsWebhookQueue
    from globesms.aws.sqs_releases import SqsReleaseQueue
    from globesms.consent.screen import OptOutCheck
    from globesms.guardrails.otp_guard import OtpGuard
    from globesms.replies.record import ReplyDeps
    from globesms.routing.route_scores import ScoreSource
    from globesms.scheduling.hold import ScheduleDeps


@cache
def message_store() -> DynamoDBMessageStore:
    from globesms.aws.dynamodb_store import DynamoDBMessageStore

    return DynamoDBMessageStore(_table_name())


@cache
def status_counts() -> DynamoDBStatusCounts:
    from globesms.aws.dynamodb_counts import DynamoDBStatusCounts

    return DynamoDBStatusCounts(_table_name())


@cache
def message_finder() -> DynamoDBMessageFinder:
    from globesms.aws.dynamodb_lookup import DynamoDBMessageFinder

    return DynamoDBMessageFinder(_table_name())


def template_store() -> DynamoDBTemplateStore | None:
    """The run-time template registry, when the stack has the table (the API changes it; senders read it)."""
    # Read from the environment at each call, not settings(): the functions that only read templates need no
    # other setting, and a process (a test run) whose environment loses the table goes back to the file.
    table = load_settings(TemplatesSettings, environment()).templates_table
    return _template_store_of(table) if table else None


@cache
def _template_store_of(table: str) -> DynamoDBTemplateStore:
    from globesms.aws.dynamodb_templates import DynamoDBTemplateStore

    return DynamoDBTemplateStore(table)


# Every function that sends imports this module: from here on `templates.registry()` (accept's and failover's
# default) reads the table when there is one, instead of the shipped file.
hooks.install(hooks.TEMPLATE_STORE, template_store)


def route_stats() -> DynamoDBRouteStats | None:
    """The route statistics (docs/routing-scores.md), when the stack has the table; read from the environment at
    each call, as the template store is."""
    table = load_settings(RouteStatsSettings, environment()).route_stats_table
    return _route_stats_of(table) if table else None


@cache
def _route_stats_of(table: str) -> DynamoDBRouteStats:
    from globesms.aws.dynamodb_route_stats import DynamoDBRouteStats

    return DynamoDBRouteStats(table)


def score_source() -> ScoreSource | None:
    table = load_settings(RouteStatsSettings, environment()).route_stats_table
    return _score_source_of(table) if table else None


@cache
def _score_source_of(table: str) -> ScoreSource:
    from globesms.routing.route_scores import ScoreSource

    return ScoreSource(_route_stats_of(table))  # its cache lives as long as the process


# Scored routes (routing/router.py) read their statistics through this process's source.
hooks.install(hooks.SCORE_SOURCE, score_source)


def consent_store() -> DynamoDBConsentStore | None:
    """The opt-out list (and replies), when the stack has the consent table; read from the environment at each
    call, as the template store is."""
    table = load_settings(ConsentTableSettings, environment()).consent_table
    return _consent_store_of(table) if table else None


@cache
def _consent_store_of(table: str) -> DynamoDBConsentStore:
    from globesms.aws.dynamodb_consent import DynamoDBConsentStore

    return DynamoDBConsentStore(table)


def opt_out_check() -> OptOutCheck | None:
    from globesms.consent.screen import OptOutCheck

    consent = load_settings(ConsentSettings, environment())
    store = _consent_store_of(consent.consent_table) if consent.consent_table else None
    return None if store is None else OptOutCheck(store, otp_too=consent.opt_out_blocks_otp)


def reply_deps() -> ReplyDeps:
    """What the replies route writes to: the consent table, the webhook queue, the keywords and the callback."""
    from globesms.replies.keywords import keyword_sets
    from globesms.replies.record import ReplyDeps

    replies = settings(RepliesSettings)
    store = _consent_store_of(replies.consent_table)
    return ReplyDeps(
        replies=store,
        opt_outs=store,
        webhooks=webhook_queue(),
        keywords=keyword_sets(replies.reply_keywords),
        callback=replies.reply_callback,
        retention_days=replies.retention_days,
    )


# From here on accept refuses opted-out recipients when the stack has the consent table.
hooks.install(hooks.OPT_OUT_CHECK, opt_out_check)


@cache
def receipt_store() -> DynamoDBReceiptStore:
    from globesms.aws.dynamodb_receipts import DynamoDBReceiptStore

    return DynamoDBReceiptStore(_table_name(), retention_days=settings(RetentionSettings).retention_days)


@cache
def receipt_deadlines() -> DynamoDBReceiptDeadlines:
    from globesms.aws.dynamodb_deadlines import DynamoDBReceiptDeadlines

    return DynamoDBReceiptDeadlines(_table_name())


@cache
def pack_claims() -> DynamoDBPackClaims:
    from globesms.aws.dynamodb_claims import DynamoDBPackClaims

    return DynamoDBPackClaims(_table_name())


@cache
def circuit_breakers() -> DynamoDBCircuitBreakers:
    from globesms.aws.dynamodb_breakers import DynamoDBCircuitBreakers

    return DynamoDBCircuitBreakers(_table_name())


@cache
def rate_limiter() -> DynamoDBRateLimiter:
    """Provider call permits shared by every dispatcher; rates from GLOBESMS_RATE_LIMITS over the defaults."""
    from globesms.aws.dynamodb_rate_limiter import DynamoDBRateLimiter
    from globesms.dispatch.rate_limits import configured_rate_limits

    return DynamoDBRateLimiter(_table_name(), configured_rate_limits())


@cache
def default_rate_limiter() -> DynamoDBRateLimiter:
    """The same permits at the default rates: a reconcile run whose GLOBESMS_RATE_LIMITS is invalid (it makes no
    query then; functions/reconcile/app.py)."""
    from globesms.aws.dynamodb_rate_limiter import DynamoDBRateLimiter
    from globesms.dispatch.rate_table import DEFAULT_RATE_LIMITS

    return DynamoDBRateLimiter(_table_name(), DEFAULT_RATE_LIMITS)


@cache
def spend_ledger() -> DynamoDBSpendLedger:
    """Spend reservations and this month's counters (docs/guardrails.md)."""
    from globesms.aws.dynamodb_spend import DynamoDBSpendLedger

    return DynamoDBSpendLedger(_table_name())


@cache
def otp_guard() -> OtpGuard:
    """OTP velocity per number and pumping detection per country (docs/guardrails.md); a trip is a metric."""
    from globesms.aws.dynamodb_otp import DynamoDBOtpCounters
    from globesms.guardrails.otp_guard import OtpGuard

    return OtpGuard(DynamoDBOtpCounters(_table_name()), on_trip=emit_pumping_suspected)


@cache
def pack_queues() -> SqsPackQueues:
    from globesms.aws.sqs_queues import SqsPackQueues

    return SqsPackQueues(settings(ProviderQueueSettings).queue_urls)


@cache
def webhook_queue() -> SqsWebhookQueue:
    from globesms.aws.sqs_queues import SqsWebhookQueue

    return SqsWebhookQueue(settings(WebhookQueueSettings).webhook_queue_url)


@cache
def schedule_store() -> DynamoDBScheduleStore:
    from globesms.aws.dynamodb_schedule import DynamoDBScheduleStore

    return DynamoDBScheduleStore(_table_name())


@cache
def release_queue() -> SqsReleaseQueue:
    from globesms.aws.sqs_releases import SqsReleaseQueue

    return SqsReleaseQueue(settings(ReleaseQueueSettings).release_queue_url)


def schedule_deps() -> ScheduleDeps | None:
    """Where accept holds scheduled sends: the table and the release queue, when the function has the queue."""
    from globesms.scheduling.hold import ScheduleDeps

    if not load_settings(ReleaseQueueSettings, environment()).release_queue_url:
        return None
    return ScheduleDeps(store=schedule_store(), releases=release_queue())


# From here on accept holds scheduled recipients (send_at) in the table and queues their releases.
hooks.install(hooks.SCHEDULE_DEPS, schedule_deps)


def reset() -> None:
    """Forget the adapters: tests change settings between cases, SnapStart builds them again (aws/snapstart.py)."""
    for factory in (
        message_store,
        status_counts,
        message_finder,
        receipt_store,
        receipt_deadlines,
        pack_claims,
        circuit_breakers,
        rate_limiter,
        spend_ledger,
        otp_guard,
        pack_queues,
        webhook_queue,
        schedule_store,
        release_queue,
        _template_store_of,
        _consent_store_of,
        _route_stats_of,
        _score_source_of,
    ):
        factory.cache_clear()
    # The registry read from the store, if this process has read one: importing the module for it would add it to
    # a SnapStart restore (aws/snapstart.py calls this) of a function that never reads templates.
    templates = sys.modules.get("globesms.routing.templates")
    if templates is not None:
        templates.reset_cache()


def _table_name() -> str:
    return settings(TableSettings).table_name
