import logging

import pytest

from globesms.observability import PhoneNumberMask, logger


def test_numbers_in_log_lines_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="globesms"):
        logger.info("sending to +85251234567 and +65 9123 4567")
    message = caplog.records[-1].getMessage()
    assert "51234567" not in message
    assert "9123 4567" not in message
    assert "+852" in message


def test_filter_masks_arguments_too() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "to %s", ("+447911123456",), None)
    PhoneNumberMask().filter(record)
    assert record.getMessage() == "to +447*******56"
