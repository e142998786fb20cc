"""What a batch's status counts are, from its records' changes (globesms.counts.tally)."""

from globesms.counts.tally import BatchTally, StatusChange, batch_counts, creations, deltas, status_change

KEYS = {"pk": "B#b1", "sk": "M#00003"}


def test_a_stream_record_is_a_change_only_for_a_message_whose_status_moved() -> None:
    new = {"status": "SUBMITTED", "expires_at": 1800000000}
    assert status_change("7", KEYS, {"status": "ACCEPTED"}, new) == StatusChange(
        "7", "b1", "ACCEPTED", "SUBMITTED", 1800000000
    )
    assert status_change("7", KEYS, None, {"status": "ACCEPTED"}) == StatusChange("7", "b1", None, "ACCEPTED")
    assert status_change("7", KEYS, {"status": "SUBMITTED"}, {"status": "SUBMITTED"}) is None  # an intermediate receipt
    assert status_change("7", KEYS, {"status": "SUBMITTED"}, None) is None  # TTL removes the batch, counts and all
    assert status_change("7", {"pk": "B#b1", "sk": "#"}, None, {"status": "QUEUED"}) is None  # the header
    assert status_change("7", {"pk": "R#aliyun#m1", "sk": "M#1"}, None, {"status": "x"}) is None
    assert status_change("7", KEYS, None, {"events": []}) is None


def test_deltas_sum_the_changes_of_each_batch_and_drop_zeros() -> None:
    changes = [
        StatusChange("1", "a", None, "ACCEPTED"),
        StatusChange("2", "a", "ACCEPTED", "SUBMITTED"),
        StatusChange("3", "a", "SUBMITTED", "DELIVERED"),
        StatusChange("4", "b", "ACCEPTED", "FAILED"),
    ]
    assert deltas(changes) == {"a": {"DELIVERED": 1}, "b": {"FAILED": 1, "ACCEPTED": -1}}
    assert creations([*changes, StatusChange("5", "b", None, "SCHEDULED")]) == {
        "a": {"ACCEPTED": 1},
        "b": {"SCHEDULED": 1},
    }


def test_a_poll_shows_records_not_counted_yet_as_accepted() -> None:
    assert batch_counts(BatchTally({}), 5, 0) == {"ACCEPTED": 5}
    assert batch_counts(BatchTally({"ACCEPTED": 2, "SUBMITTED": 2}), 5, 0) == {"ACCEPTED": 3, "SUBMITTED": 2}
    assert batch_counts(BatchTally({"DELIVERED": 5, "ACCEPTED": 0}), 5, 0) == {"DELIVERED": 5}
    assert batch_counts(BatchTally({"ACCEPTED": -1, "SUBMITTED": 1}), 1, 0) == {"SUBMITTED": 1}


def test_a_poll_shows_records_not_counted_yet_in_the_status_they_were_created_in() -> None:
    # They were all shown ACCEPTED (QUEUED once the batch was), though a record with a send_at is created SCHEDULED:
    # polled in the stream's delay, a scheduled batch claimed to be queued for sending.
    assert batch_counts(BatchTally({}), 2, 2) == {"SCHEDULED": 2}
    assert batch_counts(BatchTally({"SCHEDULED": 1}, {"SCHEDULED": 1}), 2, 2) == {"SCHEDULED": 2}
    # Mixed: 3 scheduled and 2 not; counted so far one of each created, the scheduled one released and sent.
    counted = BatchTally({"SUBMITTED": 1, "ACCEPTED": 1}, {"SCHEDULED": 1, "ACCEPTED": 1})
    assert batch_counts(counted, 5, 3) == {"SUBMITTED": 1, "ACCEPTED": 2, "SCHEDULED": 2}
    # Creations counted beyond the header's (a stream range counted twice) or an item counted before creations were:
    # the shortfall is all that is filled in, never more.
    assert batch_counts(BatchTally({"SCHEDULED": 4}, {"SCHEDULED": 4}), 3, 3) == {"SCHEDULED": 4}
    assert batch_counts(BatchTally({"SCHEDULED": 1}), 3, 3) == {"SCHEDULED": 3}
    assert batch_counts(BatchTally({"ACCEPTED": 1}), 3, 1) == {"ACCEPTED": 2, "SCHEDULED": 1}
