import io
import json
import logging

import pytest

from globesms.observability import PhoneNumberMask, logger, mask_numbers


@pytest.fixture
def log_lines() -> io.StringIO:
    stream = io.StringIO()
    handler = logger.registered_handler
    previous = handler.stream  # type: ignore[attr-defined]
    handler.stream = stream  # type: ignore[attr-defined]
    yield stream
    handler.stream = previous  # type: ignore[attr-defined]


def written(stream: io.StringIO) -> dict[str, object]:
    line: dict[str, object] = json.loads(stream.getvalue().strip().splitlines()[-1])
    return line


def test_numbers_in_messages_and_extras_are_masked(log_lines: io.StringIO) -> None:
    logger.info("sending to +85251234567 and +65 9123 4567", extra={"to": "+447911123456", "count": 3})
    line = written(log_lines)
    assert "51234567" not in str(line["message"]) and "9123 4567" not in str(line["message"])
    assert line["to"] == "+447*******56"
    assert line["count"] == 3


def test_numbers_in_a_logged_exception_are_masked(log_lines: io.StringIO) -> None:
    # Powertools formats the traceback itself, past the filter: a number in an exception's message went out whole.
    try:
        raise ValueError("not a number the provider knows: +85251234567")
    except ValueError:
        logger.exception("the query failed")
    assert "51234567" not in log_lines.getvalue()
    line = written(log_lines)
    assert "+852******67" in str(line["exception"]) and line["exception_name"] == "ValueError"


def test_child_loggers_write_through_the_same_mask(log_lines: io.StringIO) -> None:
    logging.getLogger("globesms.providers.example").warning("failed for 85251234567")
    assert "85251234567" not in log_lines.getvalue()


@pytest.mark.parametrize(
    "written",
    ["+44 (0)7911 123456", "+1 (415) 555-2671", "+852.5123.4567", "+852/5123/4567", "+852\u20125123\u20124567"],
)
def test_every_writing_of_a_number_accept_takes_is_masked(written: str) -> None:
    """The pattern knew "+", digits, spaces and "-": a number written with brackets, dots or slashes, which accept
    takes (domain/number_writing.py), went out whole in logs and in the redrive tool's listing (a review)."""
    from globesms.domain.phone import parse_mobile

    e164 = parse_mobile(written).e164
    digits = "".join(c for c in mask_numbers(f'{{"to": "{written}"}}') if c.isdigit())
    assert e164.lstrip("+") not in digits and len(digits) <= 5, mask_numbers(written)


@pytest.mark.parametrize(
    "text",
    ["2026-11-26 10:00:00", "2026-11-26T10:00:00.123456Z", "batch 01M8BN2E.00001", "at 2026-12-07T10:00:00+08:00"],
)
def test_dates_times_and_ids_are_left_alone(text: str) -> None:
    assert mask_numbers(text) == text


def test_filter_masks_arguments_too() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "to %s", ("+447911123456",), None)
    PhoneNumberMask().filter(record)
    assert record.getMessage() == "to +447*******56"


@pytest.mark.parametrize(
    ("environment", "printed"),
    [
        ({"POWERTOOLS_METRICS_DISABLED": "true"}, False),  # the local stack's default (local/lambda_host.py)
        ({"POWERTOOLS_DEV": "true"}, False),  # Powertools' dev mode, without the variable
        ({"POWERTOOLS_METRICS_DISABLED": "false"}, True),
        ({}, True),
    ],
)
def test_a_single_count_follows_the_metrics_switch_as_the_shared_metrics_do(
    environment: dict[str, str], printed: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """local/README.md says POWERTOOLS_METRICS_DISABLED=true gives no EMF lines; Powertools' single_metric prints
    its line whatever the variable says, and every emit_count did."""
    from globesms.observability import emit_count, metrics

    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.setenv("POWERTOOLS_DEV", "false")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    emit_count("Counted", 2, provider="aliyun")
    metrics.add_metric(name="Shared", unit="Count", value=1)
    metrics.flush_metrics()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [line["Counted"] for line in lines if "Counted" in line] == ([[2.0]] if printed else [])
    assert any("Shared" in line for line in lines) is printed  # as Powertools' own Metrics
    metrics.clear_metrics()


def test_a_queue_body_is_masked_as_decoded_json_so_escaped_separators_hide_no_number() -> None:
    """json.dumps escapes a dash (`+852\\u20135123\\u20134567`), which is no number to the text mask: the redrive and
    queues listings printed such a body whole (a review). A body that is not JSON is masked as text."""
    from globesms.domain.masking import mask_message_body

    body = json.dumps({"to": ["+852\u20135123\u20134567"], "text": "caf\u00e9 123456", "n": 3})
    listed = mask_message_body(body)  # the rest stays as written: escapes, separators and all
    assert listed == '{"to": ["+852********67"], "text": "caf\\u00e9 123456", "n": 3}'
    assert mask_message_body("plain +85251234567") == "plain +852******67"


@pytest.mark.parametrize(
    ("body", "hidden"),
    [
        ('{"to": "\\u002B85251234567"}', "51234567"),  # .NET's writer escapes "+"
        ('{"to": "+852\\u16805123\\u16804567"}', "5123"),  # an Ogham space mark, which accept reads
        ('{"to": "+44 7911\\/123456"}', "123456"),  # PHP's json_encode writes every "/" escaped
    ],
)
def test_escaped_pluses_and_spaces_hide_no_number_and_an_escaped_backslash_is_left_alone(
    body: str, hidden: str
) -> None:
    from globesms.domain.masking import mask_message_body

    assert hidden not in mask_message_body(body)
    text = '{"text": "C:\\\\u2013dir"}'  # a backslash, then the text "u2013dir": not an escape
    assert mask_message_body(text) == text


def test_digits_outside_the_basic_plane_escaped_as_surrogate_pairs_hide_no_number() -> None:
    """Accept reads any decimal digit; json.dumps writes one outside the basic plane as a surrogate pair, which the
    listing left escaped, for anyone decoding it to read whole (a review)."""
    from globesms.domain.masking import mask_message_body

    bold = "".join(chr(0x1D7CE + int(d)) for d in "85251234567")
    listed = mask_message_body(json.dumps({"to": "+" + bold}))
    assert chr(0x1D7CE + 4) not in json.loads(listed)["to"]  # 4 is written only in the middle
