"""How many function hosts `python -m local.run` starts: `--function-concurrency` for every function, and
`--function-hosts LOGICAL_ID=N` for one (the local stack's stand-in for Lambda scaling one queue's pollers)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from local import run


def test_function_hosts_set_one_function_s_count_over_the_common_one() -> None:
    args = run.parse_args(
        ["--function-concurrency", "2", "--function-hosts", "AliyunDispatchFunction=3", "--function-hosts", "B=1"]
    )
    assert args.function_concurrency == 2
    assert args.hosts_of == {"AliyunDispatchFunction": 3, "B": 1}
    assert run.parse_args([]).hosts_of == {}


@pytest.mark.parametrize("bad", ["AliyunDispatchFunction", "AliyunDispatchFunction=0", "=3", "A=three"])
def test_a_malformed_function_hosts_value_is_refused(bad: str) -> None:
    with pytest.raises(SystemExit):
        run.parse_args(["--function-hosts", bad])


def test_a_function_the_template_does_not_have_is_refused_before_anything_starts() -> None:
    stack = cast(Any, SimpleNamespace(template=SimpleNamespace(functions={"AliyunDispatchFunction": object()})))
    children = cast(Any, SimpleNamespace(start=lambda *a, **k: pytest.fail("nothing may start")))
    with pytest.raises(ValueError, match="AliyunDispatchFuncton"):
        run.start_functions(children, stack, 2, {"AliyunDispatchFuncton": 3})
