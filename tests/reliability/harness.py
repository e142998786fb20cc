"""An in-process reliability harness: moto (tables and queues of template.yaml), the real adapters, the real provider
clients talking to the provider emulators (through httpx.WSGITransport, or a loopback server where a read timeout
must really happen), and a loop that plays Lambda's SQS event source for the provider queues.

Time: the event source runs in rounds on a fake clock (`now`, passed to `dispatch_pack` for claim leases). A
message that failed is made visible again at once (ChangeMessageVisibility 0) and the clock moves on by the
queue's visibility timeout before the next round, which is when SQS would deliver it again. Delays on retry and
deferred packs are dropped (the packs are sent with DelaySeconds 0): they only spread load in time.
"""

from __future__ import annotations

import importlib
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import httpx
from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

from globesms.accept.service import accept
from globesms.aws import clients, wiring
from globesms.aws.dynamodb_breakers import DynamoDBCircuitBreakers
from globesms.aws.dynamodb_claims import DynamoDBPackClaims
from globesms.aws.dynamodb_deadlines import DynamoDBReceiptDeadlines
from globesms.aws.dynamodb_rate_limiter import DynamoDBRateLimiter
from globesms.aws.dynamodb_receipts import DynamoDBReceiptStore
from globesms.aws.dynamodb_store import DynamoDBMessageStore
from globesms.aws.sqs_queues import SqsPackQueues, SqsWebhookQueue
from globesms.config import settings
from globesms.dispatch.circuit_breaker import BreakerPolicy
from globesms.dispatch.rate_limits import configured_rate_limits
from globesms.dispatch.service import DispatchDeps, DispatchPolicies, DispatchSummary, dispatch_pack
from globesms.dispatch.unknown_outcomes import UnknownOutcomePolicy
from globesms.domain.status import Status
from globesms.models.api import MessageSpec
from globesms.models.outbound import ProviderName
from globesms.models.packs import DispatchPack
from globesms.models.records import MessageRecord
from globesms.ports import Provider
from globesms.providers.aliyun.client import AliyunClient
from globesms.providers.aliyun.client import settings_from_environment as aliyun_settings
from globesms.providers.huawei.client import HuaweiClient
from globesms.providers.huawei.client import settings_from_environment as huawei_settings
from globesms.providers.tencent.client import TencentSettings, TencentSmsClient
from globesms.receipts.apply import record_push
from globesms.receipts.failover import queue_resends
from globesms.reconcile.deadline import DeadlinePolicy
from globesms.reconcile.service import ReconcileDeps, ReconcileSummary, reconcile_due
from local.emulators import aliyun as aliyun_emulator
from local.emulators import huawei as huawei_emulator
from local.emulators import tencent as tencent_emulator
from local.emulators.common import Knobs
from local.settings import LOCAL_ENV_DEFAULTS
from local.stack import LocalStack

PROVIDERS = (ProviderName.ALIYUN, ProviderName.TENCENT, ProviderName.HUAWEI)
EMULATOR_MODULES = {
    ProviderName.ALIYUN: aliyun_emulator,
    ProviderName.TENCENT: tencent_emulator,
    ProviderName.HUAWEI: huawei_emulator,
}
#: One spec body per provider (Alibaba free text by routing; Tencent and Huawei pinned with a template).
SPEC_BODIES: dict[ProviderName, dict[str, Any]] = {
    ProviderName.ALIYUN: {"text": "reliability harness", "provider": "aliyun"},
    ProviderName.TENCENT: {"template": {"id": "1234567", "params": {"code": "123456"}}, "provider": "tencent"},
    ProviderName.HUAWEI: {
        "template": {"id": "8ff55eac1d0b478ab3c06c3c6a492300", "params": {"code": "123456"}},
        "provider": "huawei",
    },
}
#: Statuses a dispatch may leave a recipient in for good (SUBMITTED waits only for its receipt).
SETTLED = frozenset(
    {Status.SUBMITTED, Status.DELIVERED, Status.UNDELIVERED, Status.EXPIRED, Status.REJECTED, Status.FAILED}
)
_DIGITS = re.compile(r"\D")


def numbers(count: int, start: int = 0) -> list[str]:
    """Distinct Hong Kong mobile numbers (every provider carries them): a number names one recipient."""
    return [f"+85251{start + i:06d}" for i in range(count)]


def mixed_specs(per_provider: int, batch: int = 0) -> list[MessageSpec]:
    """`per_provider` recipients for each provider, every number distinct across batches 0-99 and providers."""
    specs = []
    for offset, provider in enumerate(PROVIDERS):
        start = offset * 100_000 + batch * 1_000
        specs.append(MessageSpec(to=numbers(per_provider, start), **SPEC_BODIES[provider]))
    return specs


class ImmediateQueues(SqsPackQueues):
    """`SqsPackQueues` without DelaySeconds (time is compressed into rounds); optionally every pack sent twice
    (a duplicate SQS delivery of every pack)."""

    def __init__(self, queue_urls: dict[ProviderName, str], *, copies: int = 1) -> None:
        super().__init__(queue_urls)
        self.copies = copies

    def send_packs(self, provider: ProviderName, packs: Sequence[DispatchPack], *, delay_seconds: int = 0) -> None:
        for _ in range(self.copies):
            super().send_packs(provider, packs, delay_seconds=0)


@dataclass
class Emulator:
    provider: ProviderName
    app: Flask
    knobs: Knobs
    base_url: str
    server: Any = None
    thread: threading.Thread | None = None

    def stats(self) -> dict[str, Any]:
        answer: dict[str, Any] = self.app.test_client().get("/_emulator/stats").get_json()
        return answer

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


class ReceiptInbox:
    """Where the emulators push their delivery receipts (a loopback server, as the real providers push over the
    network). Pushes are kept as they arrive and applied by the harness between rounds, in its own thread: moto's
    conditional writes are not safe from several threads at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pushes: list[tuple[ProviderName, bytes, str]] = []
        self.last_push = 0.0
        self.server = make_server("127.0.0.1", 0, self._app, threaded=True, request_handler=_QuietHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="receipt-inbox", daemon=True)
        self.thread.start()

    def url(self, provider: ProviderName) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/{provider.value}"

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        with self._lock:
            self._pushes.append((ProviderName(environ["PATH_INFO"].strip("/")), body, environ.get("CONTENT_TYPE", "")))
            self.last_push = time.monotonic()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"result": 0}']

    def take(self) -> list[tuple[ProviderName, bytes, str]]:
        with self._lock:
            pushes, self._pushes = self._pushes, []
        return pushes

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Delivery:
    provider: ProviderName
    receipt_handle: str
    receive_count: int
    pack: DispatchPack


@dataclass
class Outcome:
    """What one delivery did: a summary, or the exception the dispatcher raised (the message is then retried)."""

    delivery: Delivery
    summary: DispatchSummary | None = None
    error: BaseException | None = None


@dataclass
class Harness:
    stack: LocalStack
    table_name: str
    queue_urls: dict[ProviderName, str]
    dlq_urls: dict[ProviderName, str]
    max_receive_count: int
    visibility_timeout: int
    webhook_queue_url: str
    emulators: dict[ProviderName, Emulator]
    providers: dict[ProviderName, Provider]
    rate_limits: dict[str, int]
    inbox: ReceiptInbox
    breaker_policy: BreakerPolicy = field(default_factory=BreakerPolicy)
    unknown_policy: UnknownOutcomePolicy = field(default_factory=UnknownOutcomePolicy)
    receipts_applied: int = 0
    resends_queued: int = 0  # packs queued by receipt-driven failover (receipts.failover)
    now: datetime = field(default_factory=lambda: datetime(2026, 1, 5, 10, 0, tzinfo=UTC))
    sqs: Any = field(default_factory=lambda: boto3.client("sqs"))
    accepted: list[MessageRecord] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    _dead_letters: list[DispatchPack] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.store = DynamoDBMessageStore(self.table_name)
        self.claims = DynamoDBPackClaims(self.table_name)
        self.receipts = DynamoDBReceiptStore(self.table_name)
        self.limiter = DynamoDBRateLimiter(self.table_name, self.rate_limits)
        self.breakers = DynamoDBCircuitBreakers(self.table_name)
        self.queues = ImmediateQueues(self.queue_urls)
        self.webhooks = SqsWebhookQueue(self.webhook_queue_url)

    # --- intake ----------------------------------------------------------------------------------------------

    def accept_batches(self, batches: int, per_provider: int, *, copies: int = 1) -> None:
        """`batches` mixed batches (so as many packs per provider), every recipient's number distinct."""
        for batch in range(batches):
            self.accept(mixed_specs(per_provider, batch), batch_id=f"rel-batch-{batch:04d}", copies=copies)

    def accept(self, specs: Sequence[MessageSpec], *, batch_id: str = "rel-batch-0001", copies: int = 1) -> None:
        """Accept a batch; with copies=2 every pack lands on its queue twice (a duplicate delivery of each)."""
        response = accept(
            specs,
            batch_id=batch_id,
            source="api",
            now=self.now,
            retention_days=30,
            store=self.store,
            queues=ImmediateQueues(self.queue_urls, copies=copies),
        )
        assert response.rejected == 0, response.errors
        found = self.store.get_messages([m.id for m in response.messages])
        self.accepted.extend(found[m.id] for m in response.messages)

    # --- the event source ------------------------------------------------------------------------------------

    def receive(self, provider: ProviderName, max_messages: int = 10) -> list[Delivery]:
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_urls[provider],
            MaxNumberOfMessages=max_messages,
            AttributeNames=["ApproximateReceiveCount"],
        )
        return [
            Delivery(
                provider=provider,
                receipt_handle=m["ReceiptHandle"],
                receive_count=int(m["Attributes"]["ApproximateReceiveCount"]),
                pack=DispatchPack.model_validate_json(m["Body"]),
            )
            for m in answer.get("Messages", [])
        ]

    def dispatch(self, delivery: Delivery) -> Outcome:
        """What the dispatch function's record handler does with one SQS record, then what Lambda's event source
        does with the result: delete on success, visible again on failure."""
        outcome = Outcome(delivery)
        try:
            deps = DispatchDeps(
                provider=self.providers[delivery.provider],
                store=self.store,
                claims=self.claims,
                queues=self.queues,
                receipts=self.receipts,
                webhooks=self.webhooks,
                limiter=self.limiter,
                breakers=self.breakers,
                policies=DispatchPolicies(breaker=self.breaker_policy, unknown_outcomes=self.unknown_policy),
            )
            last_attempt = delivery.receive_count >= self.max_receive_count
            outcome.summary = dispatch_pack(delivery.pack, deps, now=self.now, last_attempt=last_attempt)
        except Exception as exc:  # any failure: SQS delivers it again (or moves it to the DLQ)
            outcome.error = exc
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_urls[delivery.provider], ReceiptHandle=delivery.receipt_handle, VisibilityTimeout=0
            )
        else:
            self.sqs.delete_message(QueueUrl=self.queue_urls[delivery.provider], ReceiptHandle=delivery.receipt_handle)
        self.outcomes.append(outcome)
        return outcome

    def run(
        self, *, dispatchers: int = 1, max_rounds: int = 40, before_round: Callable[[int], None] | None = None
    ) -> int:
        """Rounds until every provider queue is empty (returns the number of rounds). In each round, for each
        queue, each of `dispatchers` receives a batch in turn, then the dispatchers handle their records
        alternately (one record each in turn), as concurrent consumers of one queue would interleave.
        `before_round(n)` runs before round n (1-based), e.g. to turn the emulators' knobs."""
        for round_number in range(1, max_rounds + 1):
            if before_round is not None:
                before_round(round_number)
            resends_before = self.resends_queued
            busy = False
            first = len(self.outcomes)
            for provider in PROVIDERS:
                batches = [self.receive(provider) for _ in range(dispatchers)]
                busy = busy or any(batches)
                for position in range(max((len(b) for b in batches), default=0)):
                    for batch in batches:
                        if position < len(batch):
                            self.dispatch(batch[position])
            self.apply_receipts()
            if not busy:
                self.apply_receipts(quiet_seconds=0.5)  # the last pushes of the last round
                if self.resends_queued == resends_before:  # else the receipts queued resends: one more round
                    return round_number
            self.now += timedelta(seconds=self.visibility_timeout)
            if any(o.summary and o.summary.deferred for o in self.outcomes[first:]):
                time.sleep(1 - time.time() % 1)  # the rate limiter's seconds are real ones: wait for the next
        raise AssertionError(f"queues not drained after {max_rounds} rounds: {self.queue_depths()}")

    def apply_receipts(self, *, quiet_seconds: float = 0.05) -> int:
        """Apply the receipts pushed so far, once no push has come for `quiet_seconds`, until none comes (what the
        receipts function does with each push: parse it in the provider's format, store and apply each report)."""
        applied = 0
        while True:
            time.sleep(quiet_seconds)  # a push of the last calls may still be on its way
            while time.monotonic() - self.inbox.last_push < quiet_seconds:
                time.sleep(quiet_seconds / 2)
            pushes = self.inbox.take()
            if not pushes:
                return applied
            for provider, body, content_type in pushes:
                parsed = importlib.import_module(f"globesms.providers.{provider}.receipts").parse_push(
                    body, content_type
                )
                result = record_push(parsed.reports, store=self.receipts, now=self.now)
                if result.resends:  # as the receipts function: resends queued before the push is answered
                    queue_resends(self.queues, result.resends)
                    self.resends_queued += len(result.resends)
                applied += len(parsed.reports)
            self.receipts_applied += applied

    def reconcile(self, policy: DeadlinePolicy | None = None) -> ReconcileSummary:
        """One run of the scheduled reconcile function at the harness's clock: Alibaba and Tencent through their
        status queries against the emulators, Huawei without one.

        It starts at a wall-clock second: the limiter's seconds and the emulators' are real ones, and a run started
        in the second the previous one ended in would find that second's permits partly spent at the emulator
        (a call permitted at the end of one second and counted by the emulator in the next) but not in the limiter,
        so a query could be throttled (and rightly retried) by chance."""
        time.sleep(1 - time.time() % 1)
        deps = ReconcileDeps(
            receipts=self.receipts,
            deadlines=DynamoDBReceiptDeadlines(self.table_name),
            queries={p: self.providers[p] for p in (ProviderName.ALIYUN, ProviderName.TENCENT)},  # type: ignore[misc]
            limiter=self.limiter,
            webhooks=self.webhooks,
            clock=lambda: self.now,
        )
        return reconcile_due(deps, policy or DeadlinePolicy(), max_messages=100_000)

    def queue_depths(self) -> dict[str, int]:
        depths = {}
        for name, url in [*self.queue_urls.items(), *((f"{p}-dlq", u) for p, u in self.dlq_urls.items())]:
            attributes = self.sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
            )["Attributes"]
            depths[str(name)] = int(attributes["ApproximateNumberOfMessages"]) + int(
                attributes["ApproximateNumberOfMessagesNotVisible"]
            )
        return depths

    def dead_letters(self) -> list[DispatchPack]:
        """Every pack in the provider DLQs so far (read once: received messages are kept here, not put back)."""
        packs = self._dead_letters
        for url in self.dlq_urls.values():
            while True:
                answer = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600)
                messages = answer.get("Messages", [])
                if not messages:
                    break
                packs.extend(DispatchPack.model_validate_json(m["Body"]) for m in messages)
        return list(packs)

    # --- what the providers saw ------------------------------------------------------------------------------

    def sends_per_recipient(self) -> tuple[Counter[str], dict[str, int]]:
        """How often each emulator accepted each recipient (by our message id), from the ledgers' echo keys:
        Alibaba `TaskId` (single) or `TaskId/number` (batch), Tencent `SessionContext` (our id), Huawei
        `extend/number`, or a bare number when no echo was sent. Numbers are distinct per recipient, so a number
        names one. Also returns the ledger keys that name no accepted recipient."""
        by_id = {r.id: r.id for r in self.accepted}
        by_number = {_DIGITS.sub("", r.to): r.id for r in self.accepted}
        counts: Counter[str] = Counter()
        unknown: dict[str, int] = {}
        for emulator in self.emulators.values():
            for key, sent in emulator.stats()["sent"].items():
                if key in by_id:
                    counts[by_id[key]] += sent
                    continue
                number = _DIGITS.sub("", key.rsplit("/", 1)[-1])
                if number in by_number:
                    counts[by_number[number]] += sent
                else:
                    unknown[key] = sent
        return counts, unknown

    def max_calls_in_a_second(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for emulator in self.emulators.values():
            found.update(emulator.stats()["max_calls_in_a_second"])
        return found

    # --- the invariants --------------------------------------------------------------------------------------

    def violations(self, *, unknown_outcome_allowed: bool) -> list[str]:
        """Every accepted recipient sent at most once, and settled: a final status, SENDING with an unknown
        outcome (only where allowed), or dead-lettered with a FAILED record. Empty when all hold."""
        problems: list[str] = []
        counts, strangers = self.sends_per_recipient()
        if strangers:
            problems.append(f"ledger keys naming no accepted recipient: {strangers}")
        for message_id, sent in counts.items():
            if sent > 1:
                problems.append(f"{message_id}: sent {sent} times")
        depths = {name: n for name, n in self.queue_depths().items() if n and not name.endswith("-dlq")}
        if depths:
            problems.append(f"provider queues not drained: {depths}")
        dead = {r.id for pack in self.dead_letters() for r in pack.recipients}
        records = self.store.get_messages([r.id for r in self.accepted])
        for accepted in self.accepted:
            record = records.get(accepted.id)
            if record is None:
                problems.append(f"{accepted.id}: record lost")
                continue
            if accepted.id in dead:
                if record.status is not Status.FAILED:  # a dead-lettered pack's records must say so
                    problems.append(f"{accepted.id}: dead-lettered but {record.status} ({record.error_code})")
            elif not (record.status in SETTLED or (record.status is Status.SENDING and unknown_outcome_allowed)):
                problems.append(
                    f"{accepted.id} ({accepted.provider}): left {record.status} ({record.error_code}), sent "
                    f"{counts.get(accepted.id, 0)}x"
                )
        return problems

    def statuses(self) -> Counter[str]:
        records = self.store.get_messages([r.id for r in self.accepted])
        return Counter(str(r.status) for r in records.values())


def _provider_client(provider: ProviderName, env: dict[str, str], http: httpx.Client | None) -> Provider:
    if provider is ProviderName.ALIYUN:
        return AliyunClient(aliyun_settings(env), http=http)
    if provider is ProviderName.TENCENT:
        return TencentSmsClient(TencentSettings.from_environment(env), http=http)
    return HuaweiClient(huawei_settings(env), http=http)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


def _emulator(provider: ProviderName, knobs: Knobs, *, served: bool) -> Emulator:
    app = EMULATOR_MODULES[provider].create_app(knobs, dict(LOCAL_ENV_DEFAULTS))
    if not served:
        return Emulator(provider, app, knobs, f"http://{provider.value}.emulator.test")
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name=f"{provider}-emulator", daemon=True)
    thread.start()
    return Emulator(provider, app, knobs, f"http://127.0.0.1:{server.server_port}", server, thread)


@contextmanager
def harness(
    knobs: dict[ProviderName, Knobs] | None = None,
    *,
    served: bool = False,
    client_env: dict[str, str] | None = None,
    rate_limits: dict[str, int] | None = None,
    receipts: bool = True,
) -> Iterator[Harness]:
    """A harness inside the caller's `mock_aws()`. `served`: the emulators answer on loopback sockets (needed for
    real read timeouts; WSGITransport ignores timeouts). `client_env`: extra variables for the provider clients
    (e.g. GLOBESMS_HTTP_READ_TIMEOUT). `rate_limits`: calls per second over the configured ones, for the
    dispatchers' limiter and for the emulators, which throttle any call past them. `receipts`: the emulators push
    a delivery receipt for every message they accept (applied between rounds)."""
    limits = {**configured_rate_limits(), **(rate_limits or {})}
    deployed = LocalStack.deploy(environ={"AWS_DEFAULT_REGION": "us-east-1"})
    clients.reset()
    wiring.reset()
    settings.cache_clear()
    refs = deployed.context.refs
    sqs = boto3.client("sqs")
    queue_urls = {p: refs[f"{p.value.capitalize()}Queue"] for p in ProviderName}
    dlq_urls = {p: refs[f"{p.value.capitalize()}DeadLetterQueue"] for p in PROVIDERS}
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_urls[ProviderName.ALIYUN], AttributeNames=["RedrivePolicy", "VisibilityTimeout"]
    )["Attributes"]
    emulators = {}
    inbox = ReceiptInbox()
    for provider in PROVIDERS:
        provider_knobs = (knobs or {}).get(provider) or Knobs(seed=7)
        provider_knobs.rate_limits = {**limits, **provider_knobs.rate_limits}
        if receipts:
            provider_knobs.receipt_callback_url = inbox.url(provider)
            provider_knobs.receipt_delay_seconds = 0.0
        emulators[provider] = _emulator(provider, provider_knobs, served=served)
    providers: dict[ProviderName, Provider] = {}
    for provider, emulator in emulators.items():
        env = {
            **LOCAL_ENV_DEFAULTS,
            f"GLOBESMS_{provider.upper()}_ENDPOINT": emulator.base_url,
            **(client_env or {}),
        }
        http = None if served else httpx.Client(transport=httpx.WSGITransport(app=emulator.app))
        providers[provider] = _provider_client(provider, env, http)
    try:
        yield Harness(
            stack=deployed,
            table_name=refs["MessagesTable"],
            queue_urls=queue_urls,
            dlq_urls=dlq_urls,
            max_receive_count=int(json.loads(attributes["RedrivePolicy"])["maxReceiveCount"]),
            visibility_timeout=int(attributes["VisibilityTimeout"]),
            webhook_queue_url=refs["WebhookQueue"],
            emulators=emulators,
            providers=providers,
            rate_limits=limits,
            inbox=inbox,
        )
    finally:
        for emulator in emulators.values():
            emulator.close()
        inbox.close()
        clients.reset()
        wiring.reset()
        settings.cache_clear()


def fail_once(target: Callable[..., Any], exception: BaseException) -> Callable[..., Any]:
    """`target`, except that its first call raises `exception` (after nothing), later calls go through."""
    calls = {"n": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise exception
        return target(*args, **kwargs)

    return wrapper
