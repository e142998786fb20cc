"""`make soak`: the local stack under load with the provider emulators' faults on, then an account of every recipient.

    python -m bench.soak [--recipients 100000] [--quick] [--deadline SECONDS] [--out PATH] [--keep-log PATH]

What it does, all on loopback (bench/_stack.py starts `python -m local.run` on free ports):

1. **Stack**: two execution environments per function (`--function-concurrency 2`: two dispatchers per provider
   compete for packs, claims and rate-limit permits), killed function hosts restarted (`--restart-functions`),
   Huawei receipts pushed in batches, the unknown-outcome window at its minimum (template parameter
   `UnknownOutcomeWindowSeconds` = 60, via `LOCAL_PARAMETERS`) so that outcomes no receipt settles are decided
   within the run, provider read timeout 2 s, the default rate limits (docs/pipeline.md, "Rate limits") on the
   dispatchers and
   on the emulators alike, SQS handled records delivered again at `DUPLICATE_DELIVERY_RATE`
   (`LOCAL_SQS_DUPLICATE_RATE`, local/pollers.py).
2. **Faults** (each emulator's knobs): `ERROR_SHARE` of the provider calls fail, the share split evenly over a code
   of every normalised category the provider has (`ERROR_CODES`: retryable, throttled, recipient, request,
   config, and unknown outcome as a bare HTTP 500 after the call was taken); `TIMEOUT_RATE` of the calls are taken
   and then answered too late (a client read timeout: unknown outcome); receipts are a mix of DELIVERED,
   UNDELIVERED and EXPIRED, `RECEIPT_DUPLICATE_RATE` of them pushed twice, and each delayed by
   `RECEIPT_DELAY_SECONDS` plus a random share of `RECEIPT_JITTER_SECONDS`, so they come in any order, some before
   the send is recorded.
3. **Load**: `--recipients` recipients, each number used once, in requests of mixed sizes (1 to 1,000), each
   request one to three specs of different kinds: free text (NOTIFY, and OTP, which Alibaba sends one number per
   call), the registered template (routed to Tencent, Huawei for +86), a template pinned to Huawei, a Tencent
   template id; twelve countries; a few invalid numbers (rejected, so not accepted). `INTAKE_SHARE` of the requests
   go on the intake queue (with a `batch_id`), the rest through `POST /v1/messages`, paced at `--rate` recipients
   per second (`LOAD_RATE`: about what the local stack settles, see there).
   In the middle, a **pumping burst**: `BURST_REQUESTS` one-recipient OTP requests to `BURST_COUNTRY`, which the
   load sends no OTP to; the load's countries are first given a day of steady OTP history at the load's rate
   (`seed_otp_history`). At most the pumping floor (plus one per concurrent sender) of the burst may pass, the rest
   must be FRAUD_SUSPECTED, and nothing of the normal load may be refused by the OTP guard (`pumping_burst`).
4. **A dispatcher killed mid-batch**: while the load is going in, one host of each provider's dispatch function is
   sent SIGUSR1, which SIGKILLs it partway through an invocation (local/lambda_host.py); the runner starts it again.
   Its packs come back after the queue's visibility timeout (180 s). Left out of `--quick` (it would take minutes).
5. **Wait** until nothing is in flight: every queue empty (visible, in flight and delayed), no receipt push pending
   in the emulators, three looks in a row; or the deadline.
6. **Account**: every accepted recipient's record (each batch's partition, read from DynamoDB), the packs in the
   provider dead-letter queues, and the emulators' ledgers (how often each provider took each recipient; a number
   names one recipient, so a ledger key — our id, or the call's echo and the number — is one of our ids).

Definitions (what `soak.json` holds):
- **accepted**: recipients the accept step took, summed over the batches' headers (API and intake alike).
- **final by status**: the accepted recipients' records by status at the end.
- **in DLQ**: accepted recipients whose pack (or retry pack) is in a provider's dead-letter queue.
- **duplicates per provider**: recipients a provider's emulator took more than once (an unknown outcome resolved by
  its receipt was taken once and counts once). Must be 0. Recipients taken by more than one provider are counted
  apart (`sent_by_several_providers`).
- **lost**: accepted recipients whose record is missing, or not final (ACCEPTED, QUEUED, SENDING, SUBMITTED) and
  not in a DLQ. Must be 0. A SENDING record whose pack is in a DLQ counts as in DLQ. `lost_detail` breaks them
  down by status and error code, and says how many the provider did take.
- **seconds over a provider limit**: (operation, wall-clock second) pairs in which an emulator saw more calls than
  the operation's limit (throttled calls included: the provider saw them). Must be 0.

Exit status 1 when duplicates, lost or seconds over a limit are not 0 (or the run did not settle by the deadline).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._stack import (
    DISPATCH_FUNCTIONS,
    PROVIDER_DLQS,
    PROVIDER_QUEUES,
    PROVIDERS,
    Stack,
    StackFailed,
    running_stack,
)
from bench._stack_load import SPECS, Numbers, seed_otp_history
from bench.figures import RESULTS_DIR, machine
from globesms.aws.message_items import HEADER_SK, batch_from_item, batch_pk, message_from_item
from globesms.dispatch.rate_table import DEFAULT_RATE_LIMITS
from globesms.models.packs import DispatchPack
from globesms.models.records import BatchRecord, MessageRecord
from local.template import load_template

FULL_RECIPIENTS = 100_000
QUICK_RECIPIENTS = 2_000
#: How long to wait for the run to settle once the load is in (the killed dispatchers' packs come back after the
#: queues' 180 s visibility timeout, unknown outcomes are decided 60 s after they happen, receipts trail the load).
SETTLE_SECONDS = 15 * 60
QUICK_DEADLINE_SECONDS = 150
ERROR_SHARE = 0.20
TIMEOUT_RATE = 0.01
TIMEOUT_SECONDS = 2.5  # the answer comes after the client's read timeout
READ_TIMEOUT_SECONDS = 2.0
RECEIPT_DELAY_SECONDS = 2.0
RECEIPT_JITTER_SECONDS = 5.0
RECEIPT_DUPLICATE_RATE = 0.10
RECEIPT_MIX = {"DELIVERED": 0.85, "UNDELIVERED": 0.10, "EXPIRED": 0.05}
DUPLICATE_DELIVERY_RATE = 0.05
UNKNOWN_OUTCOME_WINDOW_SECONDS = 60  # the template's minimum
INTAKE_SHARE = 0.3
#: Execution environments per function (fewer where the template caps a queue's concurrency). Lambda would run
#: as many receipts invocations as pushes arrive; 3 lets the receipts keep up with the providers' pushes while
#: moto is busy with the load (with 2, 100,000 recipients left ~8,000 Huawei receipts behind when the load ended).
FUNCTION_CONCURRENCY = 3
#: When to arm the crash of one dispatcher of each provider: after this share of the requests went in.
CRASH_POINTS = {"aliyun": 0.15, "tencent": 0.3, "huawei": 0.45}
QUIET_LOOKS = 3
LOOK_INTERVAL_SECONDS = 2.0

#: One error code per normalised category each provider can answer with (Huawei has no code of the `recipient`
#: category: a number it cannot send to fails in the receipt). `HTTP_<status>` is a bare proxy answer
#: (local/emulators/common.py): 503 before the call is taken, 500 after (sent, answer lost).
ERROR_CODES: dict[str, dict[str, str]] = {
    "aliyun": {
        "retryable": "SYSTEM_ERROR",
        "retryable (HTTP 503)": "HTTP_503",
        "throttled": "QPS_LIMIT_CONTROL",
        "recipient": "MOBILE_NUMBER_ILLEGAL",
        "request": "INVALID_SENDERID",
        "config": "AMOUNT_NOT_ENOUGH",
        "unknown_outcome": "HTTP_500",
    },
    "tencent": {
        "retryable": "InternalError.OtherError",
        "retryable (HTTP 503)": "HTTP_503",
        "throttled": "LimitExceeded",
        "recipient": "FailedOperation.PhoneNumberInBlacklist",
        "request": "FailedOperation.TemplateUnapprovedOrNotExist",
        "config": "FailedOperation.InsufficientBalanceInSmsPackage",
        "unknown_outcome": "HTTP_500",
    },
    "huawei": {
        "retryable (HTTP 503)": "HTTP_503",
        "throttled": "E200015",
        "request": "E200028",
        "config": "E000102",
        "unknown_outcome": "HTTP_500",
    },
}
#: Codes that make no outcome unknown, for --quick (which does not wait for the unknown-outcome window).
KNOWN_OUTCOME_CATEGORIES = ("retryable", "retryable (HTTP 503)", "throttled", "recipient", "request", "config")

#: Kinds of message spec: (weight, body without `to`, countries). Free text goes to Alibaba (OTP one number per
#: call), the registered template to Tencent first (Huawei for +86), the others are pinned or routed by their id.
SPEC_KINDS: dict[str, tuple[int, dict[str, Any], tuple[str, ...]]] = {
    "text": (30, SPECS["aliyun"], ("HK", "SG", "GB", "MY", "ID", "KR", "AU", "DE", "FR", "TH", "PH")),
    "text-otp": (4, {"text": "Your code is 482913", "type": "OTP"}, ("HK", "SG", "GB", "AU")),
    "registered-template": (
        20,
        {"template": {"id": "example-otp", "params": {"code": "123456", "minutes": 5}}, "type": "OTP"},
        ("HK", "SG", "MY", "ID", "KR", "TH", "PH", "CN"),
    ),
    "tencent-template": (10, SPECS["tencent"], ("HK", "SG", "GB", "DE", "FR")),
    "huawei-template": (30, SPECS["huawei"], ("HK", "SG", "MY", "ID", "AU", "TH")),
}
#: Request sizes up to 1,000, chosen when a receipt that came before its send was recorded was looked up by scanning
#: its batch's partition from the call's first id (about 0.1 s per 1,000 records on moto; batches of 8,000 made moto
#: the bottleneck of the whole run). It is found through the number's `Recipient` index entries now
#: (`globesms.aws.dynamodb_receipts.find_recipients`), whatever the batch's size; the sizes stayed, so runs compare.
REQUEST_SIZES = (1, 2, 10, 50, 200, 500, 1_000)
REQUEST_SIZE_WEIGHTS = (10, 10, 10, 10, 10, 8, 6)
#: Recipients per second the load goes in at by default: what the local stack settled (accept, send, receipts) on
#: the 2-core machine with moto in one process, about 14-20 ms of its CPU per recipient (30,000 settled at 40/s, not
#: at 50/s then). With moto's DynamoDB in a process of its own, 8,000 and 100,000 recipients settled at 70/s
#: (`--rate 70`); a run still cannot end before moto's DynamoDB process has done its ~20 ms per recipient on its
#: one core (docs/performance.md, "Soak").
LOAD_RATE = 40
QUICK_LOAD_RATE = 500  # --quick: its ~2,000 recipients in a few seconds
INVALID_NUMBER = "12345"  # rejected (INVALID_NUMBER): in a request, never accepted
#: The pumping burst in the middle of the load: one-recipient OTP requests (a sign-up form being abused) to a country
#: the normal load never sends OTP to. The rule (docs/guardrails.md): a country with no OTP history is held past its
#: floor of 20 in 5 minutes; requests racing in the same instant (the load's 3 senders) may each pass one more.
BURST_COUNTRY = "DE"
BURST_REQUESTS = 150
QUICK_BURST_REQUESTS = 60
PUMPING_FLOOR = 20
SENDERS = 3
OTP_GUARD_CODES = frozenset({"FRAUD_SUSPECTED", "VELOCITY_LIMIT"})

FINAL = frozenset({"DELIVERED", "UNDELIVERED", "EXPIRED", "REJECTED", "FAILED"})
_DIGITS = re.compile(r"\D")


# ---------------------------------------------------------------------------------------------------------------
# The load


@dataclass
class Request:
    via: str  # "api" or "intake"
    body: dict[str, Any]
    batch_id: str | None = None  # intake only: set by us, so the batch can be found
    burst: bool = False  # part of the pumping burst


def plan_load(total: int, rng: random.Random, numbers: Numbers | None = None) -> list[Request]:
    """Requests carrying `total` valid recipients (plus a few invalid ones) in mixed sizes and kinds."""
    numbers = numbers or Numbers()
    kinds = list(SPEC_KINDS)
    weights = [SPEC_KINDS[k][0] for k in kinds]
    requests: list[Request] = []
    left = total
    # A small run keeps to small requests, so that it still has many (at least about 20).
    sizes = [s for s in REQUEST_SIZES if s <= max(1, total // 20)]
    size_weights = REQUEST_SIZE_WEIGHTS[: len(sizes)]
    while left > 0:
        size = min(left, rng.choices(sizes, size_weights)[0])
        left -= size
        parts = min(size, rng.choice((1, 1, 2, 3)))
        cuts = sorted(rng.sample(range(1, size), parts - 1)) if parts > 1 else []
        specs = []
        for start, end in zip([0, *cuts], [*cuts, size], strict=True):
            kind = rng.choices(kinds, weights)[0]
            _, body, countries = SPEC_KINDS[kind]
            to: list[str] = []
            for _ in range(end - start):
                to += numbers.take(1, rng.choice(countries))
            if len(to) >= 10 and rng.random() < 0.2:
                to.insert(rng.randrange(len(to)), INVALID_NUMBER)
            specs.append({**body, "to": to})
        body = specs[0] if len(specs) == 1 else {"messages": specs}
        if rng.random() < INTAKE_SHARE:
            batch_id = f"soak-{len(requests):05d}-{rng.getrandbits(32):08x}"
            requests.append(Request("intake", {**body, "batch_id": batch_id}, batch_id))
        else:
            requests.append(Request("api", body))
    rng.shuffle(requests)
    return requests


def with_burst(requests: list[Request], numbers: Numbers, count: int) -> list[Request]:
    """The load with `count` one-recipient OTP requests to BURST_COUNTRY in its middle."""
    burst = [
        Request("api", {"text": "Your code is 482913", "type": "OTP", "to": numbers.take(1, BURST_COUNTRY)}, burst=True)
        for _ in range(count)
    ]
    middle = len(requests) // 2
    return [*requests[:middle], *burst, *requests[middle:]]


def otp_history(requests: Sequence[Request], rate: float) -> dict[str, float]:
    """OTP recipients per hour, by country, that the normal load sends at `rate` recipients per second."""
    otp: Counter[str] = Counter()
    total = 0
    for request in requests:
        total += recipients_of(request)
        for spec in request.body.get("messages") or [request.body]:
            if spec.get("type") == "OTP" and not request.burst:
                otp.update(region(number) for number in spec["to"] if number != INVALID_NUMBER)
    seconds = max(1.0, total / rate)
    return {country: n / seconds * 3600 for country, n in otp.items()}


def region(number: str) -> str:
    import phonenumbers

    return str(phonenumbers.region_code_for_number(phonenumbers.parse(number)))


@dataclass
class Sent:
    api_answers: list[dict[str, Any]] = field(default_factory=list)
    burst_answers: list[dict[str, Any]] = field(default_factory=list)
    intake_batches: list[str] = field(default_factory=list)
    crashes_armed: dict[str, int] = field(default_factory=dict)  # provider -> pid signalled
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def batch_ids(self) -> list[str]:
        return [str(a["batch_id"]) for a in self.api_answers] + self.intake_batches


def recipients_of(request: Request) -> int:
    specs = request.body.get("messages") or [request.body]
    return sum(len(spec["to"]) if isinstance(spec["to"], list) else 1 for spec in specs)


def send_load(stack: Stack, requests: Sequence[Request], *, crashes: dict[str, float], rate: float) -> Sent:
    """Every request in, at `rate` recipients per second, three at a time (API or intake). After each crash point's
    share of the requests, one host of that provider's dispatch function is armed to die mid-invocation."""
    sent = Sent()
    done = 0
    pending_crashes = sorted(crashes.items(), key=lambda item: item[1])
    intake_url = stack.queue_url("IntakeQueue")
    offsets: dict[int, float] = {}
    total = 0
    for request in requests:
        offsets[id(request)] = total / rate
        total += recipients_of(request)
    started = time.monotonic()

    def one(request: Request) -> None:
        delay = started + offsets[id(request)] - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if request.via == "intake":
            stack.sqs.send_message(QueueUrl=intake_url, MessageBody=json.dumps(request.body))
            with sent.lock:
                sent.intake_batches.append(str(request.batch_id))
            return
        response = stack.api.post("/v1/messages", json=request.body)
        if response.status_code != 202:
            raise StackFailed(f"POST /v1/messages answered {response.status_code}: {response.text[:300]}")
        with sent.lock:
            sent.api_answers.append(response.json())
            if request.burst:
                sent.burst_answers.append(response.json())

    with ThreadPoolExecutor(max_workers=SENDERS) as pool:
        for _ in pool.map(one, requests):
            done += 1
            while pending_crashes and done >= pending_crashes[0][1] * len(requests):
                provider, _ = pending_crashes.pop(0)
                pids = stack.function_pids(DISPATCH_FUNCTIONS[provider])
                if pids:
                    os.kill(pids[0], signal.SIGUSR1)  # local/lambda_host.py: SIGKILL itself mid-invocation
                    sent.crashes_armed[provider] = pids[0]
    sent.seconds = time.monotonic() - started
    return sent


# ---------------------------------------------------------------------------------------------------------------
# Faults


def configure_faults(stack: Stack, *, quick: bool, limits: Mapping[str, int]) -> dict[str, Any]:
    """Every emulator's knobs for the soak; returns them as set."""
    applied = {}
    for provider in PROVIDERS:
        codes = ERROR_CODES[provider]
        if quick:
            codes = {category: code for category, code in codes.items() if category in KNOWN_OUTCOME_CATEGORIES}
        # Each code is drawn in turn: a per-code rate r with 1 - (1 - r)^k = ERROR_SHARE fails that share in all.
        per_code = 1 - (1 - ERROR_SHARE) ** (1 / len(codes))
        applied[provider] = stack.set_knobs(
            provider,
            error_rates={code: round(per_code, 5) for code in codes.values()},
            timeout_rate=0.0 if quick else TIMEOUT_RATE,
            timeout_seconds=TIMEOUT_SECONDS,
            rate_limits=dict(limits),
            receipt_mix=RECEIPT_MIX,
            receipt_duplicate_rate=RECEIPT_DUPLICATE_RATE,
            receipt_delay_seconds=RECEIPT_DELAY_SECONDS,
            receipt_delay_jitter_seconds=RECEIPT_JITTER_SECONDS,
            # One push per one-number OTP call would make Alibaba's receipts the longest queue of the run.
            **({"receipts_across_calls": True} if provider == "aliyun" else {}),
        )
    return applied


# ---------------------------------------------------------------------------------------------------------------
# Waiting


WATCHED_QUEUES = ("IntakeQueue", *PROVIDER_QUEUES.values(), "WebhookQueue")


def wait_until_quiet(stack: Stack, deadline: float, *, progress: bool = True) -> bool:
    """True once every watched queue is empty and no emulator has a receipt push pending, `QUIET_LOOKS` looks in a
    row; False at the deadline (time.monotonic())."""
    quiet = 0
    last_report = 0.0
    while time.monotonic() < deadline:
        stack.check_running()
        pending = stack.pending(WATCHED_QUEUES)
        pushes = {p: stack.stats(p, per_recipient=False)["receipt_pushes_pending"] for p in PROVIDERS}
        pushes = {p: n for p, n in pushes.items() if n}
        quiet = quiet + 1 if not pending and not pushes else 0
        if quiet >= QUIET_LOOKS:
            return True
        if progress and time.monotonic() - last_report > 30:
            last_report = time.monotonic()
            print(f"soak: waiting: queues {pending or '{}'}, receipt pushes {pushes or '{}'}", file=sys.stderr)
        time.sleep(LOOK_INTERVAL_SECONDS)
    return False


# ---------------------------------------------------------------------------------------------------------------
# The account


def read_batch(stack: Stack, batch_id: str) -> tuple[BatchRecord | None, list[MessageRecord]]:
    """A batch's header and message records, from its partition."""
    header = None
    messages = []
    paginator = stack.dynamodb.get_paginator("query")
    pages = paginator.paginate(
        TableName=stack.table_name,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": batch_pk(batch_id)}},
        ConsistentRead=True,
    )
    for page in pages:
        for item in page.get("Items", []):
            if item["sk"]["S"] == HEADER_SK:
                header = batch_from_item(item)
            elif item["sk"]["S"].startswith("M#"):
                messages.append(message_from_item(item))
    return header, messages


def dead_lettered(stack: Stack) -> dict[str, DispatchPack]:
    """Recipient id -> the dead-lettered pack holding it, over every provider DLQ."""
    found: dict[str, DispatchPack] = {}
    for provider in PROVIDERS:
        for message in stack.drain(PROVIDER_DLQS[provider]):
            pack = DispatchPack.model_validate_json(message["Body"])
            for recipient in pack.recipients:
                found[recipient.id] = pack
    return found


def sends_per_recipient(
    ledgers: dict[str, dict[str, int]], records: Iterable[MessageRecord]
) -> tuple[dict[str, Counter[str]], dict[str, dict[str, int]]]:
    """Provider -> our message id -> how often its emulator took it; and the ledger keys naming nobody we accepted.
    A key is our id (Alibaba single TaskId, Tencent SessionContext), `<echo>/<number>` (Alibaba batch, Huawei) or
    a bare number; numbers are unique in the run, so the number names the recipient."""
    by_id: dict[str, str] = {}
    by_number: dict[str, str] = {}
    for record in records:
        by_id[record.id] = record.id
        by_number[_DIGITS.sub("", record.to)] = record.id
    counts: dict[str, Counter[str]] = {p: Counter() for p in ledgers}
    strangers: dict[str, dict[str, int]] = {p: {} for p in ledgers}
    for provider, ledger in ledgers.items():
        for key, n in ledger.items():
            message_id = by_id.get(key) or by_number.get(_DIGITS.sub("", key.rsplit("/", 1)[-1]))
            if message_id is None:
                strangers[provider][key] = n
            else:
                counts[provider][message_id] += n
    return counts, strangers


def seconds_over_limits(stats: dict[str, dict[str, Any]], limits: dict[str, int]) -> list[dict[str, Any]]:
    over = []
    for provider, provider_stats in stats.items():
        for operation, per_second in provider_stats["calls_per_second"].items():
            limit = limits.get(operation)
            over += [
                {"provider": provider, "operation": operation, "second": int(s), "calls": n, "limit": limit}
                for s, n in per_second.items()
                if limit and n > limit
            ]
    return over


def account(stack: Stack, sent: Sent, limits: Mapping[str, int]) -> dict[str, Any]:
    """Every accepted recipient's fate, from the table, the DLQs and the emulators' ledgers."""
    headers: dict[str, BatchRecord | None] = {}
    records: dict[str, MessageRecord] = {}
    batch_ids = sent.batch_ids
    with ThreadPoolExecutor(max_workers=4) as pool:
        read = list(pool.map(lambda batch_id: read_batch(stack, batch_id), batch_ids))
        for batch_id, (header, messages) in zip(batch_ids, read, strict=True):
            headers[batch_id] = header
            records.update((m.id, m) for m in messages)
    answered_ids = {str(m["id"]) for a in sent.api_answers for m in a.get("messages", [])}
    accepted = sum(h.accepted for h in headers.values() if h is not None)
    missing_records = sorted(answered_ids - set(records))
    intake_without_header = sorted(b for b in sent.intake_batches if headers.get(b) is None)
    intake_refused = sorted(b for b in sent.intake_batches if (h := headers.get(b)) is not None and h.refusal)

    dead = dead_lettered(stack)
    stats = {p: stack.stats(p) for p in PROVIDERS}
    counts, strangers = sends_per_recipient({p: stats[p]["sent"] for p in PROVIDERS}, records.values())
    duplicates = {p: sum(1 for n in counts[p].values() if n > 1) for p in PROVIDERS}
    extra_sends = {p: sum(n - 1 for n in counts[p].values() if n > 1) for p in PROVIDERS}
    providers_of: dict[str, set[str]] = {}
    for provider in PROVIDERS:
        for message_id in counts[provider]:
            providers_of.setdefault(message_id, set()).add(provider)
    several = sorted(m for m, ps in providers_of.items() if len(ps) > 1)

    by_status = Counter(str(r.status) for r in records.values())
    in_dlq = sorted(m for m in records if m in dead)
    lost_ids = sorted(
        [*missing_records, *(m for m, r in records.items() if str(r.status) not in FINAL and m not in dead)]
    )
    lost_detail = Counter(
        f"{r.provider}/{r.status}/{r.error_code or '-'}/taken {'yes' if any(counts[p][m] for p in PROVIDERS) else 'no'}"
        for m in lost_ids
        if (r := records.get(m)) is not None
    )
    if missing_records:
        lost_detail["record missing"] = len(missing_records)
    # FAILED although a provider took it: an unknown outcome the policy decided before its receipt came (expected
    # when receipts lag the unknown-outcome window), or a record that contradicts the provider (a bug).
    failed_but_taken = Counter(
        f"{r.provider}/{r.error_category}/{r.error_code}"
        for m, r in records.items()
        if str(r.status) == "FAILED" and any(counts[p][m] for p in PROVIDERS)
    )
    over = seconds_over_limits(stats, dict(limits))
    not_delivered = Counter(
        f"{r.status}/{r.error_category or '-'}/{r.error_code or '-'}"
        for r in records.values()
        if str(r.status) != "DELIVERED"
    )
    # Recipients that went through an unknown outcome (a SENDING step in their history), by why and how they ended.
    unknown = Counter(
        f"{step.get('error_code')} -> {r.status}"
        for r in records.values()
        for step in (r.events or [])
        if step.get("status") == "SENDING"
    )
    return {
        "accepted": accepted,
        "records": len(records),
        "final_by_status": dict(sorted(by_status.items())),
        "not_delivered_by_code": dict(not_delivered.most_common(25)),
        "unknown_outcomes": dict(unknown.most_common()),
        "in_dlq": len(in_dlq),
        "in_dlq_by_status": dict(Counter(str(records[m].status) for m in in_dlq)),
        "duplicates_per_provider": duplicates,
        "extra_sends_per_provider": extra_sends,
        "sent_by_several_providers": len(several),
        "lost": len(lost_ids),
        "lost_detail": dict(lost_detail.most_common(20)),
        "lost_examples": lost_ids[:10],
        "seconds_over_limit": len(over),
        "over_limit_examples": over[:10],
        "throttled_responses": {p: stats[p]["throttled"] for p in PROVIDERS},
        "max_calls_in_a_second": {p: stats[p]["max_calls_in_a_second"] for p in PROVIDERS},
        "recipients_taken_per_provider": {p: len(counts[p]) for p in PROVIDERS},
        "ledger_keys_naming_nobody": {p: len(strangers[p]) for p in PROVIDERS},
        "failed_but_taken_by_a_provider": sum(failed_but_taken.values()),
        "failed_but_taken_by_code": dict(failed_but_taken.most_common(10)),
        "faults_injected": {p: stats[p]["faults_injected"] for p in PROVIDERS},
        "batches": {
            "api": len(sent.api_answers),
            "intake": len(sent.intake_batches),
            "intake_without_header": len(intake_without_header),
            "intake_refused": len(intake_refused),
        },
    }


# ---------------------------------------------------------------------------------------------------------------
# The run


def run(
    recipients: int,
    *,
    quick: bool,
    deadline_seconds: float,
    log_path: Path,
    seed: int,
    rate: float | None = None,
    rate_limits: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """One soak. `rate_limits`: operations whose calls per second differ from the defaults, for the dispatchers
    (`GLOBESMS_RATE_LIMITS`) and the emulators alike (the quick test raises Huawei's 1 call/s, which otherwise
    makes its ~30 small packs the longest wait of the run)."""
    rate = rate or (QUICK_LOAD_RATE if quick else LOAD_RATE)
    limits = {**DEFAULT_RATE_LIMITS, **(rate_limits or {})}
    rng = random.Random(seed)
    numbers = Numbers()
    requests = with_burst(
        plan_load(recipients, rng, numbers), numbers, QUICK_BURST_REQUESTS if quick else BURST_REQUESTS
    )
    env = {
        "GLOBESMS_HTTP_READ_TIMEOUT": str(READ_TIMEOUT_SECONDS),
        "LOCAL_SQS_DUPLICATE_RATE": str(DUPLICATE_DELIVERY_RATE),
        "POWERTOOLS_LOG_LEVEL": "WARNING",  # the functions' per-pack lines would be most of a 100,000-recipient log
    }
    if rate_limits:
        env["GLOBESMS_RATE_LIMITS"] = json.dumps(limits)
    if "UnknownOutcomeWindowSeconds" in load_template().parameters:
        env["LOCAL_PARAMETERS"] = json.dumps({"UnknownOutcomeWindowSeconds": str(UNKNOWN_OUTCOME_WINDOW_SECONDS)})
    runner_args = [
        "--function-concurrency",
        str(FUNCTION_CONCURRENCY),
        "--restart-functions",
        "--huawei-receipt-format",
        "batch",
    ]
    started = time.monotonic()
    with running_stack(log_path, env=env, runner_args=runner_args) as stack:
        knobs = configure_faults(stack, quick=quick, limits=limits)
        # A day of steady OTP at the load's rate to the load's countries (a fresh stack has none): the load is
        # normal traffic, the burst's country has no history.
        seed_otp_history(stack, otp_history(requests, rate))
        print(f"soak: {len(requests)} requests, {recipients} recipients", file=sys.stderr)
        sent = send_load(stack, requests, crashes={} if quick else CRASH_POINTS, rate=rate)
        print(f"soak: load in after {sent.seconds:.0f} s; waiting for it to settle", file=sys.stderr)
        quiet = wait_until_quiet(stack, started + deadline_seconds)
        settled_after = time.monotonic() - started
        print(f"soak: {'settled' if quiet else 'NOT settled'} after {settled_after:.0f} s; accounting", file=sys.stderr)
        result = account(stack, sent, limits)
        result["pumping_burst"] = pumping_account(stack, sent)
        result["cpu_seconds"] = stack.cpu_seconds()
        restarts = stack.log_count(r"exited with code -?\d+: starting it again")
        duplicate_deliveries = sum(
            int(m.group(1))
            for m in re.finditer(r"delivering (\d+) handled record", stack.log_path.read_text(errors="replace"))
        )
    result |= {
        "quick": quick,
        "settled": quiet,
        "seconds": {"load": round(sent.seconds, 1), "until_settled": round(settled_after, 1)},
        "requests": len(requests),
        "recipients_planned": recipients,
        "load_rate_recipients_per_second": rate,
        "faults": {
            "error_share_per_call": ERROR_SHARE,
            "error_codes": {
                p: {c: code for c, code in ERROR_CODES[p].items() if not quick or c in KNOWN_OUTCOME_CATEGORIES}
                for p in PROVIDERS
            },
            "timeout_rate": 0.0 if quick else TIMEOUT_RATE,
            "receipt_duplicate_rate": RECEIPT_DUPLICATE_RATE,
            "receipt_delay_seconds": [RECEIPT_DELAY_SECONDS, RECEIPT_DELAY_SECONDS + RECEIPT_JITTER_SECONDS],
            "sqs_duplicate_delivery_rate": DUPLICATE_DELIVERY_RATE,
            "sqs_records_delivered_again": duplicate_deliveries,
            "dispatchers_armed_to_crash": sent.crashes_armed,
            "function_host_restarts": restarts,
            "emulator_knobs": {p: {k: knobs[p][k] for k in ("error_rates", "rate_limits")} for p in PROVIDERS},
        },
    }
    return result


def pumping_account(stack: Stack, sent: Sent) -> dict[str, Any]:
    """The burst's answers, and every OTP-guard refusal of the normal load (must be none): the API's answers and
    the intake batches' headers."""
    burst_codes = Counter(str(e["code"]) for a in sent.burst_answers for e in a.get("errors", []))
    burst_ids = {str(a["batch_id"]) for a in sent.burst_answers}
    normal = Counter(
        str(e["code"])
        for a in sent.api_answers
        if str(a["batch_id"]) not in burst_ids
        for e in a.get("errors", [])
        if str(e["code"]) in OTP_GUARD_CODES
    )
    for batch_id in sent.intake_batches:
        key = {"pk": {"S": batch_pk(batch_id)}, "sk": {"S": HEADER_SK}}
        item = stack.dynamodb.get_item(TableName=stack.table_name, Key=key, ConsistentRead=True).get("Item")
        header = batch_from_item(item) if item else None
        normal.update(str(e.code) for e in (header.errors if header else []) if str(e.code) in OTP_GUARD_CODES)
    accepted = sum(int(a["accepted"]) for a in sent.burst_answers)
    return {
        "country": BURST_COUNTRY,
        "requests": len(sent.burst_answers),
        "accepted": accepted,
        "refused_by_code": dict(burst_codes),
        "accepted_at_most": PUMPING_FLOOR + SENDERS,
        "normal_load_refused_by_otp_guard": dict(normal),
    }


def summary(result: dict[str, Any]) -> str:
    faults = result["faults"]
    burst = result["pumping_burst"]
    lost = f"{result['lost']:,}  (must be 0)"
    if result["lost"]:
        lost += f"  {result['lost_detail']}"
    lines = [
        f"accepted                  {result['accepted']:,}",
        f"final by status           {result['final_by_status']}",
        f"in DLQ                    {result['in_dlq']:,}",
        f"duplicates per provider   {result['duplicates_per_provider']}  (must be 0)",
        f"lost                      {lost}",
        f"seconds over a limit      {result['seconds_over_limit']}  (must be 0)",
        f"sent by several providers {result['sent_by_several_providers']}",
        f"unknown outcomes          {result['unknown_outcomes']}",
        f"faults injected           {result['faults_injected']}",
        f"SQS redeliveries          {faults['sqs_records_delivered_again']}, host restarts "
        f"{faults['function_host_restarts']} (crashes armed: {faults['dispatchers_armed_to_crash']})",
        f"settled                   {result['settled']} after {result['seconds']['until_settled']:.0f} s",
        f"pumping burst             {burst['accepted']} of {burst['requests']} OTP to {burst['country']} accepted "
        f"(at most {burst['accepted_at_most']}), refused {burst['refused_by_code']}; normal load refused by the "
        f"OTP guard: {burst['normal_load_refused_by_otp_guard'] or 0} (must be 0)",
    ]
    return "\n".join(lines)


def failed_goals(result: dict[str, Any]) -> list[str]:
    problems = []
    if any(result["duplicates_per_provider"].values()):
        problems.append("duplicates")
    if result["lost"]:
        problems.append("lost")
    if result["seconds_over_limit"]:
        problems.append("seconds over a limit")
    if not result["settled"]:
        problems.append("not settled by the deadline")
    burst = result["pumping_burst"]
    if burst["accepted"] > burst["accepted_at_most"] or burst["requests"] - burst["accepted"] != sum(
        burst["refused_by_code"].values()
    ):
        problems.append("pumping burst not stopped")
    if burst["normal_load_refused_by_otp_guard"]:
        problems.append("normal load refused by the OTP guard")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--recipients", type=int, default=None, help=f"default {FULL_RECIPIENTS} ({QUICK_RECIPIENTS} with --quick)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a small smoke run: no dispatcher kill, no unknown outcomes"
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=None,
        help=f"seconds from the start before giving up (default: the load's own time plus {SETTLE_SECONDS} s)",
    )
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument(
        "--rate", type=float, default=None, help=f"recipients per second (default {LOAD_RATE}, {QUICK_LOAD_RATE} quick)"
    )
    parser.add_argument("--out", type=Path, default=None, help="default bench/results/soak.json (soak-quick.json)")
    parser.add_argument("--keep-log", type=Path, default=None, help="where to keep the stack's output")
    args = parser.parse_args(argv)
    recipients = args.recipients or (QUICK_RECIPIENTS if args.quick else FULL_RECIPIENTS)
    rate = args.rate or (QUICK_LOAD_RATE if args.quick else LOAD_RATE)
    deadline = args.deadline or (QUICK_DEADLINE_SECONDS if args.quick else recipients / rate + SETTLE_SECONDS)
    out = args.out or RESULTS_DIR / ("soak-quick.json" if args.quick else "soak.json")
    with tempfile.TemporaryDirectory(prefix="soak-") as scratch:
        log_path = args.keep_log or Path(scratch) / "stack.log"
        result = run(
            recipients, quick=args.quick, deadline_seconds=deadline, log_path=log_path, seed=args.seed, rate=rate
        )
    problems = failed_goals(result)
    document = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **result,
        "goals_met": not problems,
        "goals_not_met": problems,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(summary(result))
    print(f"\nwritten to {out}")
    if problems:
        print(f"NOT MET: {', '.join(problems)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
