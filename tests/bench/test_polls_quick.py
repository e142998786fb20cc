"""`make bench` figure 4 (batch polls) in its quick form: a 300-recipient batch on moto, its counts kept from the
table's stream. A smoke test of the measurement: it runs, the poll's counts equal the partition's (the bench asserts
it), and every number is there; the read units themselves are what `make bench` reports against the goal."""

from __future__ import annotations

import math

from bench import polls


def test_quick_poll_and_early_receipt_figures_measure_beside_the_partition_reads() -> None:
    figure, early = polls.measure(quick=True)

    assert figure.id == "polls.read_units" and figure.unit == "read units/poll"
    assert math.isfinite(figure.value) and figure.value > 0
    assert figure.ratio == figure.value / polls.GOAL_POLL_READ_UNITS
    before = figure.detail["before_counts_were_kept"]
    assert isinstance(before, dict) and before["of_which_counting_the_partition"] > 0
    keeping = figure.detail["keeping_the_counts"]
    assert isinstance(keeping, dict) and keeping["stream_records_handed_over"] == 2 * polls.QUICK_RECIPIENTS
    assert isinstance(figure.goal_met, bool)

    assert early.id == "polls.early_receipt_reads" and early.unit == "read units/receipt"
    assert math.isfinite(early.value) and early.value > 0
    assert early.ratio == early.value / polls.GOAL_EARLY_RECEIPT_READS
    assert early.detail["before_read_units"] > 0 and early.detail["read_requests"]
