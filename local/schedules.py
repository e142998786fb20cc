"""EventBridge schedules, locally: a function's `Schedule` events (`rate(...)`) invoke it with a scheduled event,
once when its host starts and then every period, as the rule does deployed (EventBridge's first invocation comes
within a period of the rule's creation; locally it comes at once, so `make run` sweeps from its first second).

Only one host of a function runs its schedules (`local.run` starts the others with `--no-schedules`): EventBridge
invokes the function once per period, not once per execution environment. A cron() expression is not run locally
(said once in the log). LOCAL_SCHEDULE_SECONDS, when set, replaces every rate (tests and demos need not wait a
minute for a `rate(1 minute)` rule).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from local.template import ScheduleEventSource

log = logging.getLogger("local.schedules")

SCHEDULE_SECONDS_ENV = "LOCAL_SCHEDULE_SECONDS"


def scheduled_event(schedule: ScheduleEventSource, *, region: str, account_id: str) -> dict[str, Any]:
    """The event an EventBridge schedule rule delivers to a Lambda target."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account_id,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{account_id}:rule/{schedule.function_id}-{schedule.event_name}"],
        "detail": {},
    }


def start_schedules(
    schedules: list[ScheduleEventSource],
    invoke: Callable[[Any], Any],
    stop: threading.Event,
    *,
    region: str,
    account_id: str,
) -> list[threading.Thread]:
    threads = []
    for schedule in schedules:
        if not schedule.enabled:
            continue
        if schedule.rate_seconds is None:
            log.warning(
                "%s.%s: %s is not run locally (rate() only)",
                schedule.function_id,
                schedule.event_name,
                schedule.expression,
            )
            continue
        thread = threading.Thread(
            target=_run, args=(schedule, invoke, stop, region, account_id), name=schedule.event_name, daemon=True
        )
        thread.start()
        threads.append(thread)
    return threads


def _run(
    schedule: ScheduleEventSource, invoke: Callable[[Any], Any], stop: threading.Event, region: str, account_id: str
) -> None:
    assert schedule.rate_seconds is not None
    override = os.environ.get(SCHEDULE_SECONDS_ENV)
    every = float(override) if override else schedule.rate_seconds
    while not stop.is_set():
        try:
            invoke(scheduled_event(schedule, region=region, account_id=account_id))
        except Exception:  # as EventBridge: a failed invocation is logged, the next period comes anyway
            log.exception("scheduled invocation of %s failed", schedule.function_id)
        stop.wait(every)
