import json
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatch
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from pytest_mock import MockerFixture

from globesms.models.outbound import MessageType, ProviderName
from globesms.routing import route_table
from globesms.routing.route_table import (
    PARAMETER_MAX_AGE_SECONDS,
    READ_RETRY_SECONDS,
    ROUTES_PARAMETER_ENV,
    RouteTableError,
    current_table,
    file_table,
    parse_route_table,
)

A, T, H = ProviderName.ALIYUN, ProviderName.TENCENT, ProviderName.HUAWEI
GOOD: dict[str, Any] = {
    "version": 1,
    "default": {"text": [{"provider": "aliyun"}], "template": [{"provider": "huawei"}]},
    "countries": {"HK": {"template": [{"provider": "tencent", "weight": 3}, {"provider": "huawei", "weight": 1}]}},
}
ENV = {ROUTES_PARAMETER_ENV: "/globesms/routes"}


@pytest.fixture(autouse=True)
def _fresh_override() -> Iterator[None]:
    route_table.reset_cache()
    yield
    route_table.reset_cache()


def test_the_shipped_table_loads_from_the_package_data() -> None:
    assert resources.files("globesms").joinpath("data", "routes.json").is_file()
    table = file_table()
    assert table.lookup("HK", "text", MessageType.OTP).providers == (A,)
    assert table.lookup("HK", "template", MessageType.NOTIFY).providers == (T, H, A)
    assert table.lookup("CN", "template", MessageType.MKT).providers == (H,)


def test_the_data_files_are_package_data() -> None:
    # The layer build copies the package folder; an installed package carries only what package-data names.
    root = Path(__file__).resolve().parents[2]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["globesms"]
    data = sorted((root / "layers" / "globesms" / "globesms" / "data").iterdir())
    assert [p.name for p in data] == [
        "keywords.json",
        "limits.json",
        "permissions.json",
        "prices.json",
        "routes.json",
        "templates.json",
    ]
    assert all(any(fnmatch(f"data/{p.name}", pattern) for pattern in patterns) for p in data)


def test_weights_are_kept_with_their_providers() -> None:
    table = parse_route_table(GOOD, "test")
    hk = table.lookup("HK", "template", MessageType.NOTIFY)
    assert (hk.providers, hk.weights) == ((T, H), (3, 1))
    assert table.lookup("SG", "template", MessageType.NOTIFY).weights is None


def test_text_is_parsed_too() -> None:
    assert parse_route_table(json.dumps(GOOD), "test").lookup("HK", "text", MessageType.NOTIFY).providers == (A,)


def with_(path: str, value: Any) -> dict[str, Any]:
    """GOOD with the value at a dotted path replaced (or deleted, for ...)."""
    doc = json.loads(json.dumps(GOOD))
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if value is ...:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return doc


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (with_("countries.HK.template.0.provider", "twilio"), "countries.HK.template.0.provider: Input should be"),
        (with_("countries.HK.template.0.weight", -1), "countries.HK.template.0.weight: Input should be greater"),
        (with_("countries.HK.template.0.weight", 2.5), "countries.HK.template.0.weight: Input should be a valid int"),
        (with_("countries.HK.template.0.weight", "3"), "countries.HK.template.0.weight: Input should be a valid int"),
        (with_("countries.HK.template", []), "countries.HK.template: List should have at least 1 item"),
        (with_("default.template", ...), "default.template: Field required"),
        (with_("version", ...), "version: Field required"),
        (with_("version", 2), "version: Input should be 1"),
        (with_("countries.HK.sms", []), "countries.HK.sms: Extra inputs are not permitted"),
        (with_("countries.hk", {}), "countries.hk[key]: String should match pattern"),
        (with_("default.types.PROMO", {}), "default.types.PROMO[key]: Input should be 'OTP', 'NOTIFY' or 'MKT'"),
        (
            with_("countries.HK.template", [{"provider": "huawei"}, {"provider": "huawei"}]),
            "countries.HK.template: entry 1: huawei is listed twice",
        ),
        (
            with_("default.text", [{"provider": "tencent"}]),
            "default.text: entry 0: tencent carries template messages only",
        ),
        (
            with_("countries.HK.template", [{"provider": "tencent", "weight": 0}, {"provider": "huawei"}]),
            "countries.HK.template: at least one weight must be positive",
        ),
        (
            with_("countries.CN", {"types": {"OTP": {"template": [{"provider": "huawei"}, {"provider": "tencent"}]}}}),
            "countries.CN.types.OTP.template.1: tencent does not deliver to the Chinese mainland (+86)",
        ),
        ("{not json", "not JSON"),
        ([], "Input should be a valid dictionary"),
    ],
)
def test_an_invalid_table_is_refused_naming_the_path(doc: Any, expected: str) -> None:
    with pytest.raises(RouteTableError) as caught:
        parse_route_table(doc, "routes.json")
    assert str(caught.value).startswith("route table routes.json: ")
    assert expected in str(caught.value)


def test_every_problem_is_named_at_once() -> None:
    doc = with_("countries.HK.template.1.weight", -5)
    doc["default"]["text"] = [{"provider": "nexmo"}]
    with pytest.raises(RouteTableError) as caught:
        parse_route_table(doc, "x")
    assert "countries.HK.template.1.weight" in str(caught.value)
    assert "default.text.0.provider" in str(caught.value)


# ---- the SSM override ----


def test_without_the_variable_the_file_is_the_table(mocker: MockerFixture) -> None:
    fetch = mocker.patch("aws_lambda_powertools.utilities.parameters.get_parameter")
    assert current_table(env={}) is file_table()
    fetch.assert_not_called()


def test_the_parameter_replaces_the_file_and_is_read_through_powertools_cache(mocker: MockerFixture) -> None:
    fetch = mocker.patch("aws_lambda_powertools.utilities.parameters.get_parameter", return_value=GOOD)
    table = current_table(env=ENV)
    assert table.source == "SSM parameter /globesms/routes"
    assert table.lookup("HK", "template", MessageType.OTP).providers == (T, H)
    fetch.assert_called_once_with("/globesms/routes", transform="json", max_age=PARAMETER_MAX_AGE_SECONDS)
    # Powertools hands back the same object while it is cached: the table is not parsed again.
    assert current_table(env=ENV) is table


def test_a_changed_parameter_is_parsed_again(mocker: MockerFixture) -> None:
    changed = with_("default.template", [{"provider": "tencent"}])
    mocker.patch("aws_lambda_powertools.utilities.parameters.get_parameter", side_effect=[GOOD, changed])
    assert current_table(env=ENV).lookup("SG", "template", MessageType.OTP).providers == (H,)
    assert current_table(env=ENV).lookup("SG", "template", MessageType.OTP).providers == (T,)


def test_an_invalid_parameter_at_start_is_logged_once_and_the_file_routes(mocker: MockerFixture) -> None:
    bad = with_("countries.HK.template.0.provider", "twilio")
    mocker.patch("aws_lambda_powertools.utilities.parameters.get_parameter", return_value=bad)
    error = mocker.patch.object(route_table.log, "error")
    assert current_table(env=ENV) is file_table()
    assert current_table(env=ENV) is file_table()
    error.assert_called_once()
    assert error.call_args.args[1] == "globesms/data/routes.json"
    assert "countries.HK.template.0.provider" in str(error.call_args.args[2])


def test_an_invalid_parameter_leaves_the_last_good_table_in_force(mocker: MockerFixture) -> None:
    """docs/configuration.md: "an invalid or unreadable value leaves the last good table in force", not the file's:
    an operator's typo must not undo the routing already in force. Logged once per bad value, although Powertools
    hands back a new object (of the same value) each time it reads the parameter again."""
    bad = with_("default.text", [{"provider": "tencent"}])  # Tencent carries no free text
    fixed = with_("default.template", [{"provider": "tencent"}])
    answers = [GOOD, bad, json.loads(json.dumps(bad)), fixed]
    mocker.patch("aws_lambda_powertools.utilities.parameters.get_parameter", side_effect=answers)
    error = mocker.patch.object(route_table.log, "error")
    good = current_table(env=ENV)
    assert good.source == "SSM parameter /globesms/routes"
    assert current_table(env=ENV) is good
    assert current_table(env=ENV) is good  # the same bad value read again: not logged again
    error.assert_called_once()
    assert error.call_args.args[1] == "SSM parameter /globesms/routes"
    assert "default.text" in str(error.call_args.args[2])
    assert current_table(env=ENV).lookup("SG", "template", MessageType.OTP).providers == (T,)  # fixed: in force


def test_an_unreadable_parameter_keeps_the_table_in_use_and_is_retried_later(mocker: MockerFixture) -> None:
    fetch = mocker.patch(
        "aws_lambda_powertools.utilities.parameters.get_parameter",
        side_effect=[GOOD, RuntimeError("AccessDenied"), GOOD],
    )
    error = mocker.patch.object(route_table.log, "error")
    now = [1000.0]

    def clock() -> float:
        return now[0]

    from_ssm = current_table(env=ENV, clock=clock)
    now[0] += PARAMETER_MAX_AGE_SECONDS
    assert current_table(env=ENV, clock=clock) is from_ssm  # the read failed: the last good table routes
    assert error.call_args.kwargs["extra"]["error"] == "RuntimeError"
    now[0] += READ_RETRY_SECONDS - 1
    assert current_table(env=ENV, clock=clock) is from_ssm
    assert fetch.call_count == 2  # not read again while the failure is recent
    now[0] += 1
    assert current_table(env=ENV, clock=clock).source == "SSM parameter /globesms/routes"
    assert fetch.call_count == 3


def test_an_unreadable_parameter_at_start_routes_with_the_file(mocker: MockerFixture) -> None:
    mocker.patch("aws_lambda_powertools.utilities.parameters.get_parameter", side_effect=RuntimeError("throttled"))
    mocker.patch.object(route_table.log, "error")
    assert current_table(env=ENV) is file_table()
