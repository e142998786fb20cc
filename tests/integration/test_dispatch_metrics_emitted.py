"""The dispatch handler writes what the provider alarms read (template.yaml): `RecipientsAttempted` and
`CircuitBreakerOpened` on the dispatcher's metric set {service, provider}, and `ProviderErrors` once per error
category on a line of its own {service, provider, category} — for a pack sent, for a pack retried as a whole, and
for a pack whose recording failed after its calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from globesms.dispatch import service
from globesms.errors import ErrorCategory, ProviderError
from globesms.models.outbound import OutboundSms, ProviderName
from tests.fakes import ScriptedProvider

EVENTS = Path(__file__).resolve().parents[2] / "events"


def tencent_event(recipients: int) -> dict[str, Any]:
    request: dict[str, Any] = json.loads((EVENTS / "dispatch_tencent.json").read_text())
    body = json.loads(request["Records"][0]["body"])
    first = body["recipients"][0]
    body["recipients"] = [{**first, "id": f"{first['id'][:-1]}{i}", "to": f"+8525123456{i}"} for i in range(recipients)]
    request["Records"][0]["body"] = json.dumps(body)
    return request


def emitted(out: str) -> list[dict[str, Any]]:
    """Each EMF line as {dimension: value} plus {metric: value}."""
    lines = []
    for line in out.splitlines():
        if not line.startswith("{") or "_aws" not in line:
            continue
        document = json.loads(line)
        directive = document["_aws"]["CloudWatchMetrics"][0]
        (dimensions,) = directive["Dimensions"]
        # A metric added more than once in an invocation is a list of its values.
        values = {m["Name"]: _total(document[m["Name"]]) for m in directive["Metrics"]}
        lines.append({"dimensions": {d: document[d] for d in dimensions}, "values": values})
    return lines


def _total(written: float | list[float]) -> float:
    return sum(written) if isinstance(written, list) else written


def value(lines: list[dict[str, Any]], name: str, dimensions: dict[str, str]) -> Any:
    found = [line["values"][name] for line in lines if name in line["values"] and line["dimensions"] == dimensions]
    assert len(found) == 1, (name, dimensions, lines)
    return found[0]


TENCENT = {"service": "globesms", "provider": "tencent"}


def invoked(
    dispatch: Any, request: dict[str, Any], context: Any, capsys: pytest.CaptureFixture[str]
) -> tuple[Any, Any]:
    """The handler's answer to `request`, and the EMF lines it wrote meanwhile."""
    capsys.readouterr()
    response = dispatch.lambda_handler(request, context)
    return response, emitted(capsys.readouterr().out)


def test_a_sent_pack_reports_attempts_and_errors_by_category(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = {
        "0": ProviderError(ErrorCategory.CONFIG, "AuthFailure.SignatureFailure"),
        "1": ProviderError(ErrorCategory.RECIPIENT, "InvalidNumber"),
        "2": ProviderError(ErrorCategory.RECIPIENT, "InvalidNumber"),
    }

    def answer(message: OutboundSms) -> ProviderError | None:
        return answers.get(message.message_id[-1])

    dispatch = load_handler("dispatch", GLOBESMS_PROVIDER="tencent")
    dispatch._provider = lambda: ScriptedProvider(name=ProviderName.TENCENT, answer=answer)
    response, lines = invoked(dispatch, tencent_event(4), lambda_context, capsys)
    assert response == {"batchItemFailures": []}
    assert value(lines, "RecipientsAttempted", TENCENT) == 4
    assert value(lines, "RecipientsSubmitted", TENCENT) == 1
    assert value(lines, "CircuitBreakerOpened", TENCENT) == 0
    assert value(lines, "ProviderErrors", {**TENCENT, "category": "config"}) == 1
    assert value(lines, "ProviderErrors", {**TENCENT, "category": "recipient"}) == 2
    assert not [line for line in lines if line["dimensions"].get("category") == "retryable"]


def test_a_pack_retried_as_a_whole_reports_them_too_and_the_breaker_it_opened(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, capsys: pytest.CaptureFixture[str]
) -> None:
    down = ProviderError(ErrorCategory.RETRYABLE, "InternalError", "oops", 500)
    dispatch = load_handler("dispatch", GLOBESMS_PROVIDER="tencent", GLOBESMS_BREAKER_FAILURES="1")
    dispatch._provider = lambda: ScriptedProvider(name=ProviderName.TENCENT, answer=lambda m: down)
    request = tencent_event(2)
    response, lines = invoked(dispatch, request, lambda_context, capsys)
    assert response == {"batchItemFailures": [{"itemIdentifier": request["Records"][0]["messageId"]}]}
    assert value(lines, "PacksRetried", TENCENT) == 1
    assert value(lines, "RecipientsAttempted", TENCENT) == 2
    assert value(lines, "CircuitBreakerOpened", TENCENT) == 1
    assert value(lines, "ProviderErrors", {**TENCENT, "category": "retryable"}) == 2


def test_a_pack_dead_lettered_on_its_last_receive_reports_what_it_recorded(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, capsys: pytest.CaptureFixture[str]
) -> None:
    down = ProviderError(ErrorCategory.RETRYABLE, "ServiceUnavailable", "busy", 503)
    dispatch = load_handler("dispatch", GLOBESMS_PROVIDER="tencent")
    dispatch._provider = lambda: ScriptedProvider(name=ProviderName.TENCENT, answer=lambda m: down)
    request = tencent_event(3)
    request["Records"][0]["attributes"]["ApproximateReceiveCount"] = "5"  # the last receive: the DLQ comes next
    response, lines = invoked(dispatch, request, lambda_context, capsys)
    assert response["batchItemFailures"]  # on to the dead-letter queue
    assert value(lines, "RecipientsFailed", TENCENT) == 3  # recorded FAILED, and said so
    assert value(lines, "PacksDeadLettered", TENCENT) == 1
    assert not [line for line in lines if "PacksRetried" in line["values"]]


def test_a_dispatcher_that_cannot_be_built_says_so_for_its_alarm(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nothing is sent, so no provider metric moves: <provider>-dispatcher-not-built reads this one.
    dispatch = load_handler("dispatch", GLOBESMS_PROVIDER="tencent")

    def unreadable() -> ScriptedProvider:
        raise ValueError("secret globesms/tencent must be a JSON object")

    dispatch._provider = unreadable
    request = tencent_event(2)
    response, lines = invoked(dispatch, request, lambda_context, capsys)
    assert response["batchItemFailures"]  # SQS delivers it again
    assert value(lines, "DispatchersNotBuilt", TENCENT) == 1


def test_a_dispatcher_that_keeps_its_last_good_client_sends_and_says_so_for_the_alarm(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, capsys: pytest.CaptureFixture[str]
) -> None:
    # Kept without a metric, a broken secret went unseen until the warm dispatchers were recycled (a review).
    from globesms.providers import ProviderClients

    dispatch = load_handler("dispatch", GLOBESMS_PROVIDER="tencent")
    secret: list[object] = [{"GLOBESMS_TENCENT_SECRET_ID": "AKID"}]

    def environment(name: ProviderName, *, force: bool = False) -> dict[str, str]:
        if isinstance(secret[0], Exception):
            raise secret[0]
        return dict(secret[0])  # type: ignore[call-overload]

    provider = ScriptedProvider(ProviderName.TENCENT, 200)
    dispatch._clients = ProviderClients(
        ProviderName.TENCENT,
        environment=environment,
        build=lambda _name, _env: provider,
        on_last_good=dispatch._settings_unusable,
    )
    dispatch._clients.current()  # built good once
    secret[0] = ValueError("the secret's edit is not JSON")
    response, lines = invoked(dispatch, tencent_event(2), lambda_context, capsys)
    assert response["batchItemFailures"] == [] and len(provider.calls) == 1  # sent with the last good client
    assert value(lines, "DispatchersNotBuilt", TENCENT) == 1


def test_recipients_whose_validity_lapsed_are_counted_and_never_attempted(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, capsys: pytest.CaptureFixture[str]
) -> None:
    request = tencent_event(3)
    body = json.loads(request["Records"][0]["body"])
    body["contents"][0]["validity_seconds"] = 600  # accepted at the fixture's past time: long lapsed
    request["Records"][0]["body"] = json.dumps(body)
    dispatch = load_handler("dispatch", GLOBESMS_PROVIDER="tencent")
    provider = ScriptedProvider(name=ProviderName.TENCENT)
    dispatch._provider = lambda: provider
    response, lines = invoked(dispatch, request, lambda_context, capsys)
    assert response == {"batchItemFailures": []}
    assert value(lines, "RecipientsValidityLapsed", TENCENT) == 3
    assert value(lines, "RecipientsAttempted", TENCENT) == 0
    assert provider.calls == []


def test_a_pack_whose_recording_fails_after_its_calls_still_reports_them(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def table_unavailable(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the table is unavailable")

    dispatch = load_handler("dispatch", GLOBESMS_PROVIDER="tencent")
    invalid = ProviderError(ErrorCategory.RECIPIENT, "InvalidNumber")
    dispatch._provider = lambda: ScriptedProvider(
        name=ProviderName.TENCENT, answer=lambda m: invalid if m.message_id.endswith("0") else None
    )
    monkeypatch.setattr(service, "_record", table_unavailable)  # after the calls, before any summary
    request = tencent_event(3)

    response, lines = invoked(dispatch, request, lambda_context, capsys)

    assert response == {"batchItemFailures": [{"itemIdentifier": request["Records"][0]["messageId"]}]}
    assert value(lines, "RecipientsAttempted", TENCENT) == 3
    assert value(lines, "ProviderErrors", {**TENCENT, "category": "recipient"}) == 1
    assert not [line for line in lines if "RecipientsSubmitted" in line["values"]]
