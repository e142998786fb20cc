"""The `globesms` command line (tools/cli) driven through typer's CliRunner against an httpx.MockTransport.

`FakeApi` answers POST /v1/messages as the API does where the command line depends on it: one message id
`<batch_id>.<index>` per accepted recipient (index across the whole request), per-recipient errors, and the first
answer again (with `Idempotent-Replayed: true`) for an Idempotency-Key it has seen with the same body.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from globesms.domain.status import FINAL_STATUSES, Status
from globesms.models.limits import MAX_RECIPIENTS_PER_REQUEST
from local import settings as local_settings
from tools.cli import batches
from tools.cli.api import RetryPolicy
from tools.cli.app import app
from tools.cli.common import Deps, ExitCode
from tools.cli.recipients import RecipientsProblem, read_csv, scan_csv

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
Handler = Callable[[httpx.Request], httpx.Response]


def _specs(body: dict[str, Any]) -> list[dict[str, Any]]:
    specs: list[dict[str, Any]] = body.get("messages", [body])
    return specs


@dataclass
class FakeApi:
    """The API's answers to POST /v1/messages; `reject` names numbers it rejects; `fail` can break a request."""

    reject: set[str] = field(default_factory=set)
    fail: Callable[[httpx.Request], httpx.Response | None] = lambda request: None
    requests: list[httpx.Request] = field(default_factory=list)
    answers: dict[str, tuple[bytes, dict[str, Any]]] = field(default_factory=dict)  # key -> (body, first answer)
    sent: list[str] = field(default_factory=list)  # numbers accepted by a request that was not a replay

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        failure = self.fail(request)
        if failure is not None:
            return failure
        key = request.headers["Idempotency-Key"]
        if key in self.answers:
            body, answer = self.answers[key]
            if body != request.content:
                return httpx.Response(409, json={"error": {"code": "IDEMPOTENCY_KEY_REUSED", "message": "other body"}})
            return httpx.Response(202, json=answer, headers={"Idempotent-Replayed": "true"})
        batch_id = f"b{len(self.answers)}"
        messages, errors = [], []
        numbers = [number for spec in _specs(json.loads(request.content)) for number in spec["to"]]
        for index, number in enumerate(numbers):
            if number in self.reject:
                errors.append({"index": index, "to": number, "code": "INVALID_NUMBER", "message": "not E.164"})
            else:
                messages.append(
                    {"id": f"{batch_id}.{index:05d}", "to": number, "status": "QUEUED", "provider": "aliyun"}
                )
                self.sent.append(number)
        answer = {
            "batch_id": batch_id,
            "accepted": len(messages),
            "rejected": len(errors),
            "messages": messages,
            "errors": errors,
        }
        self.answers[key] = (request.content, answer)
        return httpx.Response(202, json=answer)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]


@dataclass
class Sleeps:
    calls: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def deps_for(handler: Handler, **overrides: Any) -> Deps:
    return Deps(transport=httpx.MockTransport(handler), sleep=overrides.pop("sleep", Sleeps()), **overrides)


def invoke(deps: Deps, *args: str, env: dict[str, str] | None = None) -> Any:
    clean = {"GLOBESMS_API_URL": None, "GLOBESMS_API_KEY": None, **(env or {})}
    return runner.invoke(app, list(args), obj=deps, env=clean)


def plain(text: str) -> str:
    """Text without the frame and line breaks of typer's error panel."""
    return " ".join(text.translate({ord(c): " " for c in "│╭╮╰╯─"}).split())


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------- send: bodies, connection, output


def test_send_posts_exactly_the_api_body_to_make_runs_api_by_default() -> None:
    api = FakeApi()
    result = invoke(deps_for(api), "send", "+6591234567", "+85251234567", "--text", "Your code is 123456")
    assert result.exit_code == ExitCode.OK, result.output
    [request] = api.requests
    assert str(request.url) == f"http://127.0.0.1:{local_settings.API_PORT}/v1/messages"
    assert request.headers["x-api-key"] == local_settings.DEFAULT_API_KEY == "local-dev-key"
    assert request.headers["Idempotency-Key"]
    assert json.loads(request.content) == {"to": ["+6591234567", "+85251234567"], "text": "Your code is 123456"}
    assert "b0.00000" in result.stdout and "accepted 2, rejected 0" in result.stdout


def test_send_template_with_params_type_and_every_optional_field() -> None:
    api = FakeApi()
    args = ["send", "+6591234567", "--template", "example-otp", "--param", "code=123456", "--param", "minutes=5"]
    args += ["--type", "OTP", "--sender-id", "Acme", "--provider", "tencent", "--validity", "600"]
    args += ["--client-ref", "order-42", "--status-callback", "https://you.example/sms", "--callback-on-submitted"]
    result = invoke(deps_for(api), *args)
    assert result.exit_code == ExitCode.OK, result.output
    assert api.bodies() == [
        {
            "to": ["+6591234567"],
            "template": {"id": "example-otp", "params": {"code": "123456", "minutes": "5"}},
            "type": "OTP",
            "sender_id": "Acme",
            "provider": "tencent",
            "validity_seconds": 600,
            "client_ref": "order-42",
            "status_callback": "https://you.example/sms",
            "status_callback_on_submitted": True,
        }
    ]


def test_api_url_and_key_come_from_the_environment_and_flags_win() -> None:
    api = FakeApi()
    env = {"GLOBESMS_API_URL": "https://api.example/Prod", "GLOBESMS_API_KEY": "from-env"}
    assert invoke(deps_for(api), "send", "+6591234567", "--text", "hi", env=env).exit_code == 0
    flags = ["--api-url", "https://other.example/v2", "--api-key", "from-flag"]
    assert invoke(deps_for(api), "send", "+6591234567", "--text", "hi", *flags, env=env).exit_code == 0
    assert [str(r.url) for r in api.requests] == [
        "https://api.example/Prod/v1/messages",
        "https://other.example/v2/v1/messages",
    ]
    assert [r.headers["x-api-key"] for r in api.requests] == ["from-env", "from-flag"]


def test_send_json_is_one_document_with_stable_keys() -> None:
    api = FakeApi(reject={"12345"})
    result = invoke(deps_for(api), "send", "+6591234567", "12345", "--text", "hi", "--json")
    assert result.exit_code == ExitCode.OK, result.output
    document = json.loads(result.stdout)
    assert set(document) == {"batches", "accepted", "rejected", "error"}
    assert (document["accepted"], document["rejected"], document["error"]) == (1, 1, None)
    [batch] = document["batches"]
    assert set(batch) == {
        "chunk",
        "batch_id",
        "idempotency_key",
        "replayed",
        "accepted",
        "rejected",
        "messages",
        "errors",
    }
    assert batch["messages"] == [
        {"id": "b0.00000", "to": "+6591234567", "status": "QUEUED", "provider": "aliyun", "line": None}
    ]
    assert batch["errors"] == [
        {"index": 1, "to": "12345", "code": "INVALID_NUMBER", "message": "not E.164", "line": None}
    ]


def test_given_idempotency_key_is_sent_as_is_and_a_rerun_is_answered_not_sent_again() -> None:
    api = FakeApi()
    args = ["send", "+6591234567", "--text", "hi", "--idempotency-key", "order-42-otp", "--json"]
    first, second = invoke(deps_for(api), *args), invoke(deps_for(api), *args)
    assert [r.headers["Idempotency-Key"] for r in api.requests] == ["order-42-otp", "order-42-otp"]
    assert json.loads(second.stdout)["batches"][0]["replayed"] is True
    assert api.sent == ["+6591234567"]
    assert first.exit_code == second.exit_code == ExitCode.OK


def test_without_a_key_each_run_is_a_new_send() -> None:
    api = FakeApi()
    for _ in range(2):
        invoke(deps_for(api), "send", "+6591234567", "--text", "hi")
    keys = [r.headers["Idempotency-Key"] for r in api.requests]
    assert len(set(keys)) == 2 and api.sent == ["+6591234567", "+6591234567"]


# ---------------------------------------------------------------- send: CSV files


def test_csv_is_sent_in_chunks_with_per_row_params_and_csv_lines(tmp_path: Path) -> None:
    rows = ["+6591230001,111", "+6591230002,111", "12345,222", "+6591230004,222", "+6591230005,333",
            "+6591230006,333", "+6591230007,444"]  # fmt: skip
    csv_file = write_csv(tmp_path / "r.csv", "to,code", rows)
    api = FakeApi(reject={"12345"})
    result = invoke(deps_for(api, chunk_size=3), "send", "--file", str(csv_file), "--template", "otp", "--json")
    assert result.exit_code == ExitCode.OK, result.output
    assert api.bodies() == [
        {"messages": [
            {"to": ["+6591230001", "+6591230002"], "template": {"id": "otp", "params": {"code": "111"}}},
            {"to": ["12345"], "template": {"id": "otp", "params": {"code": "222"}}},
        ]},
        {"messages": [
            {"to": ["+6591230004"], "template": {"id": "otp", "params": {"code": "222"}}},
            {"to": ["+6591230005", "+6591230006"], "template": {"id": "otp", "params": {"code": "333"}}},
        ]},
        {"to": ["+6591230007"], "template": {"id": "otp", "params": {"code": "444"}}},
    ]  # fmt: skip
    document = json.loads(result.stdout)
    assert [b["chunk"] for b in document["batches"]] == [0, 1, 2]
    assert (document["accepted"], document["rejected"]) == (6, 1)
    [error] = document["batches"][0]["errors"]
    assert (error["to"], error["line"]) == ("12345", 4)  # the header is line 1
    assert [m["line"] for m in document["batches"][1]["messages"]] == [5, 6, 7]
    keys = [b["idempotency_key"] for b in document["batches"]]
    assert len(set(keys)) == 3 and all(key.endswith(f"-{i}") for i, key in enumerate(keys))


def test_csv_of_plain_numbers_with_text_is_one_spec_per_chunk_and_number_column_works(tmp_path: Path) -> None:
    csv_file = write_csv(tmp_path / "r.csv", "number", ["+6591230001", "", "+6591230002"])  # a blank line is skipped
    api = FakeApi()
    result = invoke(deps_for(api), "send", "--file", str(csv_file), "--text", "hello", "--type", "MKT")
    assert result.exit_code == ExitCode.OK, result.output
    assert api.bodies() == [{"to": ["+6591230001", "+6591230002"], "text": "hello", "type": "MKT"}]


def test_the_real_chunk_size_is_the_apis_cap_read_from_its_models(tmp_path: Path) -> None:
    assert Deps().chunk_size == MAX_RECIPIENTS_PER_REQUEST
    rows = [f"+659{n:07d}" for n in range(MAX_RECIPIENTS_PER_REQUEST + 1)]
    csv_file = write_csv(tmp_path / "big.csv", "to", rows)
    api = FakeApi()
    result = invoke(Deps(transport=httpx.MockTransport(api)), "send", "--file", str(csv_file), "--text", "hi", "--json")
    assert result.exit_code == ExitCode.OK, result.output
    assert [len(body["to"]) for body in api.bodies()] == [MAX_RECIPIENTS_PER_REQUEST, 1]


def test_a_file_whose_request_would_pass_the_apis_body_limit_is_sent_in_smaller_requests(tmp_path: Path) -> None:
    """10,000 rows each with a parameter of its own repeat the message per row: 5.5 MB, which the API refuses (413)
    on every run, with no way round it (a review). A request over the limit is halved until it fits."""
    from globesms.models.limits import MAX_BODY_BYTES

    rows = [f"+659{n:07d},{'x' * 380}{n}" for n in range(MAX_RECIPIENTS_PER_REQUEST)]
    csv_file = write_csv(tmp_path / "wide.csv", "to,note", rows)
    api = FakeApi()
    args = ["send", "--file", str(csv_file), "--template", "notice", "--json"]
    result = invoke(Deps(transport=httpx.MockTransport(api)), *args)
    assert result.exit_code == ExitCode.OK, result.output[:500]
    assert len(api.requests) > 1 and all(len(r.content) <= MAX_BODY_BYTES for r in api.requests)
    assert len(api.sent) == MAX_RECIPIENTS_PER_REQUEST  # everybody, once, in the file's order
    assert api.sent == [row.split(",")[0] for row in rows]


def test_a_request_split_after_an_edit_moves_no_other_requests_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A row edited in place (a longer parameter) that tipped its request over the body limit split it in two, and
    every later request, unchanged, took the next position and so a new key: a rerun after a failure sent them all
    again (a review). A request's key holds its position in the file, and a half's is under it."""
    from tools.cli import recipients

    monkeypatch.setattr(recipients, "MAX_BODY_BYTES", 2_000)  # the 4 MiB limit, scaled down
    content: dict[str, Any] = {"template": {"id": "notice"}}
    rows = [recipients.Recipient(f"+6591230{n:03d}", {"note": f"n{n}"}, line=n + 2) for n in range(6)]

    def keys(rows: list[recipients.Recipient]) -> dict[tuple[str, ...], str]:
        return {
            tuple(x.number for x in chunk): recipients.chunk_idempotency_key(
                recipients.request_body(content, chunk), position, ""
            )
            for position, chunk in recipients.chunks(rows, 3, content)
        }

    before = keys(rows)
    after = keys([recipients.Recipient(rows[0].number, {"note": "x" * 900}, rows[0].line), *rows[1:]])
    untouched = ("+6591230003", "+6591230004", "+6591230005")
    assert after[untouched] == before[untouched] and len(after) > len(before)
    assert before[untouched].endswith("-1") and any(k.endswith("-0.0") for k in after.values())


def test_a_rerun_after_a_failure_sends_only_the_rest(tmp_path: Path) -> None:
    csv_file = write_csv(tmp_path / "r.csv", "to", [f"+659123000{n}" for n in range(7)])
    api = FakeApi()
    calls = iter(range(100))

    def connection_lost_at_third_request(request: httpx.Request) -> httpx.Response | None:
        if next(calls) >= 2:
            raise httpx.ConnectError("connection refused", request=request)
        return None

    api.fail = connection_lost_at_third_request
    args = ["send", "--file", str(csv_file), "--text", "hi", "--json"]
    failed = invoke(deps_for(api, chunk_size=3, retry=RetryPolicy(attempts=2)), *args)
    assert failed.exit_code == ExitCode.UNAVAILABLE
    document = json.loads(failed.stdout)
    assert [b["chunk"] for b in document["batches"]] == [0, 1]
    assert document["error"]["kind"] == "unavailable"
    first_keys = [b["idempotency_key"] for b in document["batches"]]

    api.fail = lambda request: None
    rerun = invoke(deps_for(api, chunk_size=3), *args)
    assert rerun.exit_code == ExitCode.OK, rerun.output
    again = json.loads(rerun.stdout)["batches"]
    assert [b["idempotency_key"] for b in again[:2]] == first_keys
    assert [b["replayed"] for b in again] == [True, True, False]
    assert sorted(api.sent) == sorted(f"+659123000{n}" for n in range(7))  # everybody once


def test_a_deliberate_repeat_of_a_file_needs_a_new_key(tmp_path: Path) -> None:
    csv_file = write_csv(tmp_path / "r.csv", "to", ["+6591230001"])
    api = FakeApi()
    args = ["send", "--file", str(csv_file), "--text", "hi"]
    first = invoke(deps_for(api), *args)
    again = invoke(deps_for(api), *args)  # a week later: the API keeps the batch, not only the key's 24 hours
    invoke(deps_for(api), *args, "--idempotency-key", "campaign-2")
    assert api.sent == ["+6591230001", "+6591230001"]
    # Answered "replayed", the rerun sent nobody anything and exits 0 as a send does: it says so (a review).
    assert (first.exit_code, again.exit_code) == (ExitCode.OK, ExitCode.OK)
    assert "replayed" not in first.stderr
    assert "1 request was taken by the API before (replayed): nothing was sent for them now" in plain(again.stderr)
    assert "--idempotency-key" in again.stderr


@pytest.mark.parametrize(
    ("header", "rows", "extra", "complaint"),
    [
        ("name,code", ["+6591230001,1"], [], "exactly one of the columns 'to' or 'number'"),
        ("to,number", ["+6591230001,+6591230002"], [], "both found"),
        ("to,code", ["+6591230001,1", "+6591230002,2", "+6591230003"], [], "line 4: 1 fields, but the header has 2"),
        ("to,code", ["+6591230001,1", ",2"], [], "line 3: no number in column 'to'"),
        ("to,code,code", ["+6591230001,1,2"], [], "column 'code' appears twice"),
        ("to", [], [], "no recipients"),
        ("to,code", ["+6591230001,1"], ["--param", "code=2"], "'code' is both a --param and a column"),
        # A quote left open ran to the end of the file: the rows after it went out as one recipient's param.
        ("to,code", ['+6591230001,"1', "+6591230002,2", "+6591230003,3"], [], "not valid CSV (unexpected end of data)"),
    ],
)
def test_a_bad_csv_is_a_usage_error_and_nothing_is_sent(
    tmp_path: Path, header: str, rows: list[str], extra: list[str], complaint: str
) -> None:
    csv_file = write_csv(tmp_path / "r.csv", header, rows)
    api = FakeApi()
    result = invoke(deps_for(api, chunk_size=2), "send", "--file", str(csv_file), "--template", "otp", *extra)
    assert result.exit_code == ExitCode.USAGE
    assert complaint in plain(result.stderr)
    assert api.requests == []


def test_csv_checks_read_rows_one_at_a_time(tmp_path: Path) -> None:
    csv_file = write_csv(tmp_path / "r.csv", "\ufeffto,code", ["+6591230001,1", "+6591230002,2"])
    layout = scan_csv(csv_file)
    assert (layout.rows, layout.param_columns) == (2, {"code": 1})
    recipients = read_csv(csv_file, layout)
    assert not isinstance(recipients, list | tuple)  # a generator: the file is never held whole
    assert [(r.number, r.params, r.line) for r in recipients] == [
        ("+6591230001", {"code": "1"}, 2),
        ("+6591230002", {"code": "2"}, 3),
    ]
    (tmp_path / "latin.csv").write_bytes(b"to\n+6591230001\xe9\n")
    with pytest.raises(RecipientsProblem, match="not UTF-8"):
        scan_csv(tmp_path / "latin.csv")


@pytest.mark.parametrize(
    "args",
    [
        ["send", "+6591234567"],  # neither --text nor --template
        ["send", "+6591234567", "--text", "a", "--template", "otp"],
        ["send", "+6591234567", "--text", "a", "--param", "code=1"],
        ["send", "+6591234567", "--template", "otp", "--param", "code"],
        ["send", "--text", "a"],  # no recipients
        ["send", "+6591234567", "--text", "a", "--idempotency-key", " padded"],
        ["send", "+6591234567", "--text", "a", "--type", "SPAM"],
        ["send", "+6591234567", "--text", "a", "--no-such-option"],
        ["send", "--file", "/nonexistent/recipients.csv", "--text", "a"],
        # A URL httpx cannot parse was a traceback; one without a scheme was retried, then "unavailable" (3).
        ["send", "+6591234567", "--text", "a", "--api-url", "http://127.0.0.1:3000x"],
        ["send", "+6591234567", "--text", "a", "--api-url", "notaurl"],
        ["send", "+6591234567", "--text", "a", "--api-url", "ftp://example.com"],
        # A key pasted with a non-breaking space was a UnicodeEncodeError traceback.
        ["send", "+6591234567", "--text", "a", "--api-key", "key\u00a0"],
    ],
)
def test_usage_errors_exit_2_and_send_nothing(args: list[str]) -> None:
    api = FakeApi()
    result = invoke(deps_for(api), *args)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert api.requests == []


def test_numbers_and_a_file_together_or_more_numbers_than_a_request_holds_are_refused(tmp_path: Path) -> None:
    csv_file = write_csv(tmp_path / "r.csv", "to", ["+6591230001"])
    api = FakeApi()
    both = invoke(deps_for(api), "send", "+6591234567", "--file", str(csv_file), "--text", "a")
    too_many = invoke(deps_for(api, chunk_size=2), "send", "+6591230001", "+6591230002", "+6591230003", "--text", "a")
    assert both.exit_code == too_many.exit_code == ExitCode.USAGE
    assert "use --file" in too_many.stderr and api.requests == []


def test_help_explains_the_idempotency_keys() -> None:
    result = invoke(Deps(), "send", "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "Idempotency-Key" in text and "derived from that chunk's content" in text


def test_help_shows_the_form_of_a_message_id() -> None:
    """The help is markdown: `<batch id>.<index>` as plain text was taken for HTML tags and dropped, leaving "A
    message id, ., as send prints it." (a reviewer's finding)."""
    result = invoke(Deps(), "status", "--help", env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "A message id, <batch id>.<index>, as send prints it." in plain(result.stdout)


# ---------------------------------------------------------------- exit codes and retries


def test_a_refusal_exits_1_with_the_fields_named() -> None:
    refusal = {
        "error": {
            "code": "VALIDATION_ERROR",
            "message": "invalid",
            "fields": [{"field": "messages.0.text", "rule": "too long"}],
        }
    }
    api = FakeApi(fail=lambda request: httpx.Response(422, json=refusal))
    text = invoke(deps_for(api), "send", "+6591234567", "--text", "x")
    as_json = invoke(deps_for(api), "send", "+6591234567", "--text", "x", "--json")
    assert text.exit_code == as_json.exit_code == ExitCode.REFUSED
    assert "VALIDATION_ERROR" in text.stderr and "messages.0.text: too long" in text.stderr
    error = json.loads(as_json.stdout)["error"]
    assert error == {
        "kind": "refused",
        "status": 422,
        "code": "VALIDATION_ERROR",
        "message": "invalid",
        "fields": refusal["error"]["fields"],
        "idempotency_key": api.requests[1].headers["Idempotency-Key"],  # send names the request it stopped at
    }
    assert len(api.requests) == 2  # a refusal is never retried


def test_a_wrong_api_key_is_a_refusal() -> None:
    api = FakeApi(fail=lambda request: httpx.Response(403, json={"message": "Forbidden"}))
    result = invoke(deps_for(api), "status", "b0.00000", "--json")
    assert result.exit_code == ExitCode.REFUSED
    assert json.loads(result.stdout)["error"]["code"] == "HTTP_403"


def test_what_is_printed_is_never_read_as_markup() -> None:
    """`[/]` in a number or a text was read as a closing tag: a MarkupError after the send had gone out (exit 1, its
    batch id lost)."""
    api = FakeApi(reject={"[/]"})
    result = invoke(deps_for(api), "send", "[/]", "+6591234567", "--text", "[bold]x[/]")
    assert result.exit_code == ExitCode.OK, result.output
    assert "[/]" in result.stdout and "accepted 1, rejected 1" in result.stdout


def test_every_recipient_rejected_exits_1_some_rejected_exits_0() -> None:
    api = FakeApi(reject={"12345", "999"})
    every = invoke(deps_for(api), "send", "12345", "999", "--text", "x", "--json")
    some = invoke(deps_for(api), "send", "12345", "+6591234567", "--text", "x")
    assert every.exit_code == ExitCode.REFUSED and some.exit_code == ExitCode.OK
    assert json.loads(every.stdout)["error"]["code"] == "EVERY_RECIPIENT_REJECTED"


def test_5xx_is_retried_with_the_same_key_then_exits_3() -> None:
    sleeps = Sleeps()
    api = FakeApi(fail=lambda request: httpx.Response(502, json={"message": "Internal server error"}))
    result = invoke(deps_for(api, sleep=sleeps), "send", "+6591234567", "--text", "x")
    assert result.exit_code == ExitCode.UNAVAILABLE
    assert len(api.requests) == RetryPolicy().attempts and len(sleeps.calls) == RetryPolicy().attempts - 1
    [key] = {r.headers["Idempotency-Key"] for r in api.requests}
    assert f"again with --idempotency-key {key}" in plain(result.stderr)  # how to retry without sending twice


def test_a_transient_answer_then_success_exits_0_and_honours_retry_after() -> None:
    sleeps = Sleeps()
    busy = {"error": {"code": "IDEMPOTENCY_KEY_IN_PROGRESS", "message": "busy"}}
    answers = iter([httpx.Response(409, json=busy, headers={"Retry-After": "2"}), None])
    api = FakeApi(fail=lambda request: next(answers))
    result = invoke(deps_for(api, sleep=sleeps), "send", "+6591234567", "--text", "x")
    assert result.exit_code == ExitCode.OK, result.output
    assert sleeps.calls == [2.0] and api.sent == ["+6591234567"]


def test_cannot_connect_exits_3() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    result = invoke(deps_for(refuse), "batch", "b0", "--json")
    assert result.exit_code == ExitCode.UNAVAILABLE
    assert json.loads(result.stdout)["error"]["kind"] == "unavailable"


# ---------------------------------------------------------------- status


MESSAGE = {
    "id": "b0.00000", "batch_id": "b0", "to": "+6591234567", "status": "DELIVERED", "type": "NOTIFY",
    "provider": "aliyun", "provider_message_id": "p-1", "segments": 1, "client_ref": None, "error": None,
    "created_at": "2026-11-26T10:00:00Z", "updated_at": "2026-11-26T10:00:09Z", "submitted_at": "2026-11-26T10:00:01Z",
    "events": [
        {"type": "status", "at": "2026-11-26T10:00:00Z", "status": "ACCEPTED"},
        {"type": "receipt", "at": "2026-11-26T10:00:09Z", "status": "DELIVERED", "raw_status": "1"},
    ],
}  # fmt: skip


def message_api(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/v1/messages/b0.00000":
        return httpx.Response(200, json=MESSAGE)
    return httpx.Response(404, json={"error": {"code": "NOT_FOUND", "message": "no message"}})


def test_status_shows_the_message_and_its_history() -> None:
    result = invoke(deps_for(message_api), "status", "b0.00000")
    assert result.exit_code == ExitCode.OK, result.output
    assert "DELIVERED" in result.stdout and "p-1" in result.stdout and "ACCEPTED" in result.stdout


def test_status_json_is_the_apis_answer_and_unknown_ids_exit_1() -> None:
    found = invoke(deps_for(message_api), "status", "b0.00000", "--json")
    assert json.loads(found.stdout) == MESSAGE
    missing = invoke(deps_for(message_api), "status", "b9.00000", "--json")
    assert missing.exit_code == ExitCode.REFUSED
    assert json.loads(missing.stdout)["error"]["code"] == "NOT_FOUND"


# ---------------------------------------------------------------- batch


def batch_view(counts: dict[str, int], *, state: str = "QUEUED", accepted: int = 2, **extra: Any) -> dict[str, Any]:
    return {
        "batch_id": "b0", "state": state, "source": "api", "created_at": "2026-11-26T10:00:00Z",
        "accepted": accepted, "rejected": 0, "counts": counts, "errors": [], "refusal": None,
        "messages": [], "next": None, **extra,
    }  # fmt: skip


@dataclass
class BatchApi:
    """Answers GET /v1/batches/b0 with the next of `views` (the last one again once they run out)."""

    views: list[dict[str, Any]]
    pages: dict[str | None, tuple[list[dict[str, Any]], str | None]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        view = self.views.pop(0) if len(self.views) > 1 else self.views[0]
        after = request.url.params.get("after")
        if int(request.url.params["limit"]) > 1 and self.pages:
            messages, cursor = self.pages[after]
            view = {**view, "messages": messages, "next": cursor}
        return httpx.Response(200, json=view)


def test_batch_pages_through_next_cursors_for_every_message() -> None:
    rows = [
        {"id": f"b0.0000{i}", "to": f"+659123000{i}", "status": "DELIVERED", "provider": "aliyun"} for i in range(5)
    ]
    pages = {None: (rows[:2], "b0.00001"), "b0.00001": (rows[2:4], "b0.00003"), "b0.00003": (rows[4:], None)}
    api = BatchApi([batch_view({"DELIVERED": 5}, accepted=5)], pages=pages)
    result = invoke(deps_for(api), "batch", "b0", "--messages", "--page-size", "2", "--json")
    assert result.exit_code == ExitCode.OK, result.output
    document = json.loads(result.stdout)
    assert document["messages"] == rows and document["final"] is True and "next" not in document
    assert [r.url.params.get("after") for r in api.requests[1:]] == [None, "b0.00001", "b0.00003"]
    assert all(r.url.params["limit"] == "2" for r in api.requests[1:])


def test_batch_shows_counts_and_rejections() -> None:
    error = {"index": 1, "to": "12345", "code": "INVALID_NUMBER", "message": "not E.164"}
    api = BatchApi([batch_view({"SUBMITTED": 1}, accepted=1, rejected=1, errors=[error])])
    result = invoke(deps_for(api), "batch", "b0")
    assert result.exit_code == ExitCode.OK, result.output
    assert "SUBMITTED" in result.stdout and "INVALID_NUMBER" in result.stdout and "final 0/1" in result.stdout
    document = json.loads(invoke(deps_for(api), "batch", "b0", "--json").stdout)
    assert (document["final"], document["messages"], document["errors"]) == (False, [], [error])


def test_watch_polls_until_every_recipient_is_final_then_stops() -> None:
    api = BatchApi(
        [
            batch_view({}, state="ACCEPTING"),
            batch_view({"QUEUED": 2}),
            batch_view({"SUBMITTED": 1, "DELIVERED": 1}),
            batch_view({"DELIVERED": 1, "FAILED": 1}),
            batch_view({"DELIVERED": 2}),  # never reached: the watch ended on the previous answer
        ]
    )
    sleeps = Sleeps()
    result = invoke(deps_for(api, sleep=sleeps), "batch", "b0", "--watch", "--interval", "0.5", "--json")
    assert result.exit_code == ExitCode.OK, result.output
    assert len(api.requests) == 4 and sleeps.calls == [0.5, 0.5, 0.5]
    assert json.loads(result.stdout)["counts"] == {"DELIVERED": 1, "FAILED": 1}


def test_watch_with_the_live_table_ends_too_and_a_batch_that_accepted_nobody_is_final_at_once() -> None:
    api = BatchApi([batch_view({"SENDING": 1, "EXPIRED": 1}), batch_view({"UNDELIVERED": 1, "EXPIRED": 1})])
    live = invoke(deps_for(api), "batch", "b0", "--watch")
    assert live.exit_code == ExitCode.OK and "UNDELIVERED" in live.stdout and len(api.requests) == 2
    rejected = BatchApi([batch_view({}, state="REJECTED", accepted=0)])
    assert invoke(deps_for(rejected), "batch", "b0", "--watch").exit_code == ExitCode.OK
    assert len(rejected.requests) == 1


def test_all_final_uses_the_layers_final_statuses() -> None:
    for status in Status:
        view = batch_view({status.value: 2})
        assert batches.all_final(view) is (status in FINAL_STATUSES)
    assert not batches.all_final(batch_view({"DELIVERED": 1}))  # one of two accepted records not counted yet


# ---------------------------------------------------------------- redrive


@pytest.fixture
def queues() -> Any:
    import boto3
    from moto import mock_aws

    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        dlq = sqs.create_queue(QueueName="test-dlq")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 5})
        source = sqs.create_queue(QueueName="test-source", Attributes={"RedrivePolicy": policy})["QueueUrl"]
        for n in range(3):
            sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps({"pack_id": f"p{n}", "to": f"+861380013800{n}"}))
        yield sqs, boto3.client("cloudformation", region_name="us-east-1"), dlq, source


def test_redrive_moves_a_dlq_back_with_tools_redrive(queues: Any) -> None:
    sqs, cloudformation, dlq, source = queues
    deps = Deps(aws_clients=lambda: (sqs, cloudformation))
    dry = invoke(deps, "redrive", dlq, "--dry-run", "--wait-seconds", "0", "--json")
    assert dry.exit_code == ExitCode.OK, dry.output
    listed = json.loads(dry.stdout)
    assert (listed["moved"], len(listed["listed"]), listed["destination"]) == (0, 3, source)
    assert sorted(m["body_start"] for m in listed["listed"]) == [
        f'{{"pack_id": "p{n}", "to": "+861********0{n}"}}' for n in range(3)
    ]  # no full number in what an operator's terminal (or a CI log) keeps
    moved = invoke(deps, "redrive", dlq, "--max", "2", "--wait-seconds", "0")
    assert moved.exit_code == ExitCode.OK, moved.output
    assert "moved 2, failed 0" in moved.stdout
    rest = json.loads(invoke(deps, "redrive", dlq, "--wait-seconds", "0", "--json").stdout)
    assert (rest["moved"], rest["source"]) == (1, dlq)


def test_redrive_of_an_unknown_queue_is_a_usage_error(queues: Any) -> None:
    sqs, cloudformation, _, _ = queues
    result = invoke(Deps(aws_clients=lambda: (sqs, cloudformation)), "redrive", "Nope", "--stack", "no-stack", "--json")
    assert result.exit_code == ExitCode.USAGE
    assert "no queue 'Nope'" in json.loads(result.stdout)["error"]["message"]


def test_a_redrive_an_aws_error_ends_says_what_moved_so_far(queues: Any) -> None:
    from botocore.exceptions import ClientError

    sqs, cloudformation, dlq, _ = queues

    def refused(**kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "DeleteMessageBatch")

    sqs.delete_message_batch = refused
    result = invoke(Deps(aws_clients=lambda: (sqs, cloudformation)), "redrive", dlq, "--wait-seconds", "0", "--json")
    assert result.exit_code == ExitCode.REFUSED
    message = json.loads(result.stdout)["error"]["message"]
    assert "AccessDenied" in message and "(stopped after: moved 3, failed 0, moved but not deleted 3)" in message


# ---------------------------------------------------------------- packaging


def test_the_console_script_and_its_extra_stay_out_of_the_layer() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"] == {"globesms": "tools.cli:main"}
    cli_extra = {requirement.split("==")[0] for requirement in pyproject["project"]["optional-dependencies"]["cli"]}
    assert {"typer", "rich"} <= cli_extra
    layer = (ROOT / "layers" / "globesms" / "requirements.txt").read_text()
    assert not any(name in layer for name in ("typer", "rich"))
    # make test installs the command line: the dev lock it installs is resolved with the cli extra.
    assert "--extra cli" in (ROOT / "Makefile").read_text()
    assert "\ntyper==" in (ROOT / "requirements" / "lock-dev.txt").read_text()


def test_main_tells_how_to_install_the_extra_when_typer_is_missing() -> None:
    # In a fresh interpreter, so that no module of this one is imported twice.
    script = "import sys; sys.modules['typer'] = None; from tools.cli import main; main()"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == ExitCode.USAGE
    assert "pip install -e '.[cli]'" in done.stderr


@pytest.mark.parametrize("cut", range(1, 13))
def test_a_redrive_listing_masks_a_number_the_100th_character_cuts(cut: int) -> None:
    """The body was cut to 100 characters and then masked: a number cut there showed up to 7 of its digits, or
    masked as if its middle digits were its last (found by a review). Masked whole, then cut."""
    from globesms.domain.masking import mask_numbers
    from tools.cli.queues import _listed
    from tools.redrive import RedriveResult

    body = '{"text":"' + "x" * (82 - cut) + '","to":["+85251234567"]}'
    result = RedriveResult(source="dlq", destination="q", listed=[{"MessageId": "m", "Body": body}])
    assert _listed(result)[0]["body_start"] == mask_numbers(body)[:100]
