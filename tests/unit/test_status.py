from hypothesis import given
from hypothesis import strategies as st

from globesms.domain.status import FINAL_STATUSES, Status, forward


def test_forward_moves_are_taken_and_backward_ones_ignored() -> None:
    assert forward(Status.QUEUED, Status.SUBMITTED) is Status.SUBMITTED
    assert forward(Status.SUBMITTED, Status.DELIVERED) is Status.DELIVERED
    assert forward(Status.DELIVERED, Status.SUBMITTED) is Status.DELIVERED
    assert forward(Status.DELIVERED, Status.UNDELIVERED) is Status.DELIVERED


@given(st.lists(st.sampled_from(list(Status)), min_size=1, max_size=12))
def test_once_final_a_status_never_changes(updates: list[Status]) -> None:
    current = Status.ACCEPTED
    reached_final: Status | None = None
    for update in updates:
        current = forward(current, update)
        if reached_final is not None:
            assert current is reached_final
        elif current in FINAL_STATUSES:
            reached_final = current
