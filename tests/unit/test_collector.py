import gc

import pytest

from globesms.collector import paused_during


@pytest.fixture(autouse=True)
def _collector_on():
    gc.enable()
    yield
    gc.enable()


def test_the_collector_is_paused_while_the_work_runs_and_on_again_after() -> None:
    seen = []
    work = paused_during(lambda: seen.append(gc.isenabled()) or "answer")
    assert work() == "answer"
    assert seen == [False]
    assert gc.isenabled()


def test_the_collector_is_on_again_when_the_work_fails() -> None:
    @paused_during
    def work() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        work()
    assert gc.isenabled()


def test_a_collector_paused_by_the_caller_is_left_paused() -> None:
    """Nested bulk work (or the caller's own pause) is not undone: only the call that paused it turns it on."""
    inner = paused_during(gc.isenabled)
    outer = paused_during(lambda: (inner(), gc.isenabled()))
    assert outer() == (False, False)
    assert gc.isenabled()
    gc.disable()
    assert inner() is False
    assert not gc.isenabled()
