import json
from importlib import resources
from typing import Any

import pytest
from pytest_mock import MockerFixture

from globesms.models.limits import MAX_TEXT_CHARS
from globesms.models.outbound import ProviderName
from globesms.ports import MAX_SEED_TEMPLATES
from globesms.routing import templates
from globesms.routing.templates import (
    IdVersion,
    ParamsProblem,
    Rendered,
    TemplateRegistryError,
    TextVersion,
    file_registry,
    parse_registry,
    registry,
    render,
)

A, T, H = ProviderName.ALIYUN, ProviderName.TENCENT, ProviderName.HUAWEI
LOGIN: dict[str, Any] = {
    "aliyun": {"text": "Acme: {code} is your code, valid {minutes} min. Never share {code}."},
    "tencent": {"id": "1800308", "params": ["code", "minutes"]},
    "huawei": {"id": "8ff55eac1d0b478ab3c06c3c6a492300", "params": ["minutes", "code"]},
}


def doc(**templates: Any) -> dict[str, Any]:
    return {"version": 1, "templates": templates}


def test_the_shipped_registry_loads_from_the_package_data() -> None:
    assert resources.files("globesms").joinpath("data", "templates.json").is_file()
    versions = registry().get("example-otp")
    assert versions is not None and set(versions) == {A, T, H}
    assert registry().get("1234567") is None


@pytest.mark.parametrize("count", [MAX_SEED_TEMPLATES, MAX_SEED_TEMPLATES + 1])
def test_a_shipped_file_the_seed_cannot_copy_at_once_is_a_deployment_error(mocker: MockerFixture, count: int) -> None:
    """The file seeds the template table in one transaction (99 templates and the marker): with more, every
    PUT/DELETE /v1/templates failed (502) for good; now such a file fails when it loads, as an invalid one does."""
    shipped = json.dumps(doc(**{f"tpl-{i}": {"huawei": {"id": f"h{i}"}} for i in range(count)}))
    package = mocker.patch.object(templates, "resources").files.return_value
    package.joinpath.return_value.read_text.return_value = shipped
    file_registry.cache_clear()
    try:
        if count <= MAX_SEED_TEMPLATES:
            assert len(file_registry().templates) == count
        else:
            with pytest.raises(TemplateRegistryError, match=rf"{count} templates; the shipped file holds at most 99"):
                file_registry()
    finally:
        file_registry.cache_clear()


def test_a_registry_from_text_or_parsed_json() -> None:
    for raw in (doc(login=LOGIN), json.dumps(doc(login=LOGIN))):
        versions = parse_registry(raw, "test").get("login")
        assert versions is not None
        assert versions[T] == IdVersion(id="1800308", params=["code", "minutes"])
        assert isinstance(versions[A], TextVersion)


# ---- rendering ----

VERSIONS = parse_registry(doc(login=LOGIN), "test").templates["login"]
PARAMS = {"minutes": "5", "extra": "ignored", "code": "123456"}


def test_alibaba_gets_the_text_with_every_placeholder_filled() -> None:
    assert render(VERSIONS[A], PARAMS) == Rendered(
        text="Acme: 123456 is your code, valid 5 min. Never share 123456.",
        template_params={"code": "123456", "minutes": "5"},  # not sent: kept for a failover to render again
        segments=1,
    )


def test_tencent_and_huawei_get_their_id_and_the_params_in_their_templates_order() -> None:
    tencent = render(VERSIONS[T], PARAMS)
    huawei = render(VERSIONS[H], PARAMS)
    assert isinstance(tencent, Rendered) and isinstance(huawei, Rendered)
    assert (tencent.template_id, list(tencent.template_params or {})) == ("1800308", ["code", "minutes"])
    assert list((tencent.template_params or {}).values()) == ["123456", "5"]  # what dispatch sends, in order
    assert (huawei.template_id, list((huawei.template_params or {}).values())) == (
        "8ff55eac1d0b478ab3c06c3c6a492300",
        ["5", "123456"],
    )
    assert tencent.text is None and tencent.segments is None


def test_a_param_value_is_not_read_as_a_placeholder() -> None:
    rendered = render(TextVersion(text="{a}-{b}"), {"a": "{b}", "b": "x"})
    assert isinstance(rendered, Rendered) and rendered.text == "{b}-x"


def test_braces_that_are_no_placeholder_stay() -> None:
    rendered = render(TextVersion(text="{} {not a name} {code}"), {"code": "1"})
    assert isinstance(rendered, Rendered) and rendered.text == "{} {not a name} 1"


def test_segments_are_counted_on_the_rendered_text() -> None:
    rendered = render(TextVersion(text="验证码 {code}"), {"code": "1" * 70})
    assert isinstance(rendered, Rendered) and rendered.segments == 2


@pytest.mark.parametrize("provider", [A, T, H])
def test_a_missing_param_is_named(provider: ProviderName) -> None:
    problem = render(VERSIONS[provider], {"code": "1"})
    assert problem == ParamsProblem("TEMPLATE_PARAMS", "missing template params: minutes")


def test_a_rendered_text_over_the_limit_is_refused() -> None:
    problem = render(TextVersion(text="{a}{b}{c}{d}"), {k: "x" * 500 for k in "abcd"})
    assert isinstance(problem, ParamsProblem) and problem.code == "TEMPLATE_PARAMS"
    assert f"at most {MAX_TEXT_CHARS}" in problem.message


# ---- an invalid registry ----


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (doc(login={**LOGIN, "tencent": {"id": "SMS_1800308", "params": ["code", "minutes"]}}), "templates.login: "),
        (doc(login={**LOGIN, "tencent": {"id": "SMS_1800308", "params": ["code", "minutes"]}}), "tencent.id"),
        (
            doc(login={**LOGIN, "huawei": {"id": "h1", "params": ["code"]}}),
            "templates.login: every version must take the same params",
        ),
        (
            doc(login={"tencent": {"id": "1", "params": ["code", "code"]}}),
            "templates.login.tencent: params repeated: code",
        ),
        (doc(login={}), "templates.login: no provider version"),
        # Sent as it is, so refused as a message's own text would be (docs/security.md).
        (doc(login={"aliyun": {"text": "Code {code}\u202e"}}), "templates.login.aliyun.text: must not contain U+202E"),
        (doc(login={"aliyun": {"id": "SMS_1"}}), "templates.login.aliyun.id: Extra inputs are not permitted"),
        (doc(login={"twilio": {"id": "1"}}), "templates.login.twilio: Extra inputs are not permitted"),
        (doc(login={"huawei": {"id": "h1", "params": ["a b"]}}), "templates.login.huawei.params.0: String should"),
        (doc(**{"1800308": {"tencent": {"id": "1800308"}}}), "templates.1800308[key]: String should match pattern"),
        ({"templates": {}}, "version: Field required"),
        ("{", "Invalid JSON"),
    ],
)
def test_an_invalid_registry_is_refused_naming_the_path(raw: Any, expected: str) -> None:
    with pytest.raises(TemplateRegistryError) as caught:
        parse_registry(raw, "templates.json")
    assert str(caught.value).startswith("template registry templates.json: ")
    assert expected in str(caught.value)


def test_a_rendered_text_over_the_parts_limit_is_refused() -> None:
    # 700 emoji are 1,400 UTF-16 units, 33 to a part (a surrogate pair is never split): 22 parts, though within
    # the character limit.
    problem = render(TextVersion(text="{a}"), {"a": "😀" * 700})
    assert isinstance(problem, ParamsProblem) and problem.code == "TEMPLATE_PARAMS"
    assert "this text is 22" in problem.message
