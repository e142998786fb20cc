"""`make bench`'s figures 1, 2, 3 and 6 in their quick form: each is really measured and well formed.

Smoke tests of the benchmark code, never of speed: nothing here asserts a time, a ratio or a goal (this machine
is too noisy for that, and `make bench` reports the goals). They do fail when a figure could not be measured:
the benchmarks check on the way that every handler served its event and every client and SDK read every
recipient's result.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench import cold_start, cpu, signing
from bench._cold_env import HANDLERS
from bench.figures import Figure, table, write_results
from globesms.models.outbound import ProviderName
from local.template import load_template


def check_well_formed(figures: list[Figure], expected_ids: set[str], tmp_path: Path) -> None:
    assert {f.id for f in figures} == expected_ids
    assert len(figures) == len(expected_ids)
    for figure in figures:
        assert math.isfinite(figure.value) and figure.value > 0, figure.id
        assert figure.unit and figure.title and figure.goal
        assert figure.goal_op in ("<=", ">=", "==") and figure.goal_value > 0
        assert isinstance(figure.goal_met, bool)
        if figure.reference is not None:
            assert math.isfinite(figure.reference) and figure.reference > 0, figure.id
            assert figure.reference_label
        if figure.ratio is not None:
            assert figure.reference is not None
            assert figure.ratio == pytest.approx(figure.value / figure.reference), figure.id
    out = tmp_path / "figures.json"
    write_results(figures, out, extra={"quick": True})
    written = json.loads(out.read_text())["figures"]
    assert [entry["id"] for entry in written] == [f.id for f in figures]
    assert all({"value", "reference", "ratio", "goal", "goal_met"} <= entry.keys() for entry in written)
    assert len(table(figures).splitlines()) == len(figures) + 2


@pytest.mark.sdk
def test_signing_compares_every_provider_with_its_sdk(tmp_path: Path) -> None:
    figures = signing.measure(quick=True)
    ids = {"signing.tencent", "signing.huawei", "signing.aliyun_batch", "signing.aliyun_single"}
    check_well_formed(figures, ids, tmp_path)
    for figure in figures:
        assert figure.ratio is not None and figure.unit == "req/s"
        assert figure.detail["sdk_call"] in figure.detail["seconds_per_request"]
        whole = figure.detail["whole_call"]
        assert isinstance(whole, dict)
        assert whole["sdk_call"] in whole["seconds_per_request"]
        assert whole["ours_req_per_s"] > 0 and whole["sdk_req_per_s"] > 0 and whole["ratio"] > 0


@pytest.mark.usefixtures("layer_built_once")
def test_cold_start_and_memory_of_every_handler(tmp_path: Path) -> None:
    figures = cold_start.measure(quick=True)
    names = [handler.name for handler in HANDLERS]
    check_well_formed(figures, {f"cold_start.{n}" for n in names} | {f"memory.{n}" for n in names}, tmp_path)
    by_id = {f.id: f for f in figures}
    for name in names:
        assert by_id[f"cold_start.{name}"].unit == "ms"
        assert by_id[f"memory.{name}"].ratio is None  # judged on the size itself
        # Loaded as deployed: from the built layer, whose bytecode leaves only the handler's own app.py to compile
        # (the layer's Makefile compiles the rest; without it every module of the layer is in this list).
        assert by_id[f"cold_start.{name}"].detail["modules_compiled_at_load"] == ["app"]
    for provider in ProviderName:
        assert by_id[f"cold_start.dispatch_{provider.value}"].detail["http_requests"]
    # What the cold starts were cut by stays cut: only the functions that accept requests load the request models,
    # and the HTTPS clients' context reads no root until a handshake needs one (the layer's hashed roots).
    loading = {name for name in names if by_id[f"cold_start.{name}"].detail["request_models_loaded"]}
    assert loading == {"send_api", "intake"}
    calling_out = {name: by_id[f"cold_start.{name}"].detail["tls_roots_loaded"] for name in names}
    assert {name for name, roots in calling_out.items() if roots is not None} >= {
        "dispatch_aliyun",
        "dispatch_tencent",
        "dispatch_huawei",
        "webhooks",
        "reconcile",
    }
    assert all(roots in (None, 0) for roots in calling_out.values()), calling_out


def test_every_function_of_the_template_has_its_cold_start() -> None:
    assert {handler.function for handler in HANDLERS} == set(load_template().functions)


def test_a_handlers_environment_is_its_functions_in_the_template_with_secrets_as_plain_variables() -> None:
    template = load_template()
    for handler in HANDLERS:
        declared = template.functions[handler.function].environment
        assert set(declared) <= set(handler.env), handler.name
        assert all(handler.env[name] == "" for name in declared if name.endswith("_SECRET_NAME")), handler.name
    dispatcher = next(h for h in HANDLERS if h.name == "dispatch_aliyun").env
    assert dispatcher["GLOBESMS_PROVIDER"] == "aliyun"
    assert dispatcher["GLOBESMS_ALIYUN_ENDPOINT"] == ""  # the provider's own HTTPS endpoint, as deployed
    assert dispatcher["GLOBESMS_ALIYUN_ACCESS_KEY_ID"]
    assert dispatcher["AWS_LAMBDA_FUNCTION_NAME"].endswith("AliyunDispatchFunction")


def test_a_handler_that_made_none_of_its_calls_is_not_counted() -> None:
    handler = next(h for h in HANDLERS if h.name == "status_counts")
    served = {"answer": {}, "http_requests": [], "aws_calls": {"dynamodb": ["transact_write_items"], "sqs": []}}
    cold_start.check_answer(handler, served)
    with pytest.raises(RuntimeError, match="served without transact_write_items"):
        cold_start.check_answer(handler, {**served, "aws_calls": {"dynamodb": [], "sqs": []}})


def test_calls_are_listed_in_order_with_repeats_counted() -> None:
    calls = ["get_item", "query", "query", "query", "put_item", "query"]
    assert cold_start.in_runs(calls) == ["get_item", "query x3", "put_item", "query"]


def test_cpu_per_recipient_of_accept_and_dispatch(tmp_path: Path) -> None:
    figures = cpu.measure(quick=True)
    paths = ["accept_1k"] + [f"dispatch_{p.value}" for p in ProviderName]
    check_well_formed(figures, {f"cpu.{p}" for p in paths} | {f"memory.cpu_{p}" for p in paths}, tmp_path)
    for figure in figures:
        if figure.id.startswith("cpu."):
            assert figure.detail["recipients"] in (1000, 200, 500)
