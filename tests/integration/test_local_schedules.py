"""The local stack runs the template's schedules: SchedulerFunction's sweep every minute, as EventBridge would."""

from __future__ import annotations

import threading
from typing import Any

from local.schedules import scheduled_event, start_schedules
from local.template import ScheduleEventSource, load_template, rate_seconds


def test_the_template_schedules_the_sweep_every_minute() -> None:
    (sweep,) = load_template().schedules_of("SchedulerFunction")
    assert (sweep.event_name, sweep.rate_seconds, sweep.enabled) == ("Sweep", 60, True)


def test_rate_expressions() -> None:
    assert [rate_seconds(e) for e in ("rate(1 minute)", "rate(5 minutes)", "rate(2 hours)", "rate(1 day)")] == [
        60,
        300,
        7200,
        86_400,
    ]
    assert rate_seconds("cron(0 12 * * ? *)") is None


def test_a_schedule_invokes_its_function_with_a_scheduled_event_at_once() -> None:
    stop = threading.Event()
    received: list[Any] = []

    def invoke(event: Any) -> None:
        received.append(event)
        stop.set()

    schedules = [
        ScheduleEventSource("SchedulerFunction", "Sweep", "rate(1 minute)", 60),
        ScheduleEventSource("SchedulerFunction", "Nightly", "cron(0 1 * * ? *)", None),
        ScheduleEventSource("SchedulerFunction", "Off", "rate(1 minute)", 60, enabled=False),
    ]
    threads = start_schedules(schedules, invoke, stop, region="us-east-1", account_id="123456789012")
    assert len(threads) == 1  # the cron one is not run locally, the disabled one not at all
    threads[0].join(timeout=30)
    (event,) = received
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
    assert event.keys() == scheduled_event(schedules[0], region="r", account_id="a").keys()
