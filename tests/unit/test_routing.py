from collections import Counter
from typing import Any

import pytest

from globesms.models.outbound import MessageType, ProviderName
from globesms.routing.route_table import RouteTable, file_table, parse_route_table
from globesms.routing.router import Routed, RouteRefusal, SpecRouter
from globesms.routing.templates import IdVersion, ProviderTemplates, TextVersion

A, T, H = ProviderName.ALIYUN, ProviderName.TENCENT, ProviderName.HUAWEI
COUNTRY_CODES = {"HK": 852, "SG": 65, "GB": 44, "CN": 86, "US": 1}

EVERYWHERE: ProviderTemplates = {
    A: TextVersion(text="Your code is {code}"),
    T: IdVersion(id="1800308", params=["code"]),
    H: IdVersion(id="tplOtp", params=["code"]),
}
TENCENT_ONLY: ProviderTemplates = {T: IdVersion(id="1800308", params=["code"])}
ALIYUN_ONLY: ProviderTemplates = {A: TextVersion(text="Your code is {code}")}


def table(doc: dict[str, Any]) -> RouteTable:
    return parse_route_table({"version": 1, **doc}, "test")


def entries(*providers: ProviderName | tuple[ProviderName, int]) -> list[dict[str, Any]]:
    return [{"provider": p[0], "weight": p[1]} if isinstance(p, tuple) else {"provider": p} for p in providers]


def route(
    template: str | None = None,
    region: str = "HK",
    pin: ProviderName | None = None,
    *,
    registered: ProviderTemplates | None = None,
    routes: RouteTable | None = None,
    message_type: MessageType = MessageType.NOTIFY,
    message_id: str = "B.00000",
) -> Routed | RouteRefusal:
    router = SpecRouter(
        routes or file_table(),
        "text" if template is None else "template",
        message_type,
        pin,
        template,
        registered,
    )
    return router.route(region, COUNTRY_CODES[region], message_id)


# ---- the shipped table: what routing did before the table became data ----


@pytest.mark.parametrize(
    ("template", "region", "pin", "expected"),
    [
        (None, "HK", None, (A,)),
        (None, "US", None, (A,)),
        ("1234567", "HK", None, (T,)),
        ("otp", "HK", None, (H,)),  # not a Tencent template id: the next provider with templates
        ("h" * 32, "HK", None, (H,)),  # Huawei's longest
        ("1234567", "CN", None, (H,)),
        ("1234567", "HK", H, (H,)),
        (None, "SG", A, (A,)),
    ],
)
def test_routes_with_the_shipped_table(
    template: str | None, region: str, pin: ProviderName | None, expected: tuple[ProviderName, ...]
) -> None:
    assert route(template, region, pin) == Routed(expected[0], expected)


@pytest.mark.parametrize(
    ("template", "region", "pin", "registered", "code"),
    [
        (None, "CN", None, None, "NO_ROUTE"),  # free text to the mainland: only Huawei goes there, templates only
        ("1234567", "CN", T, None, "PROVIDER_CANNOT_CARRY"),
        (None, "HK", T, None, "PROVIDER_CANNOT_CARRY"),
        ("1234567", "HK", A, None, "PROVIDER_CANNOT_CARRY"),
        ("otp", "HK", T, None, "PROVIDER_CANNOT_CARRY"),
        # Over Huawei's 32 characters and not numeric: no provider takes it (it was accepted for Huawei, which
        # then refused every send of it at dispatch).
        ("h" * 33, "HK", None, None, "NO_ROUTE"),
        ("h" * 33, "HK", H, None, "PROVIDER_CANNOT_CARRY"),
        ("login", "HK", H, TENCENT_ONLY, "TEMPLATE_UNKNOWN_FOR_PROVIDER"),  # pinned where the registry has none
        ("login", "CN", None, TENCENT_ONLY, "TEMPLATE_UNKNOWN_FOR_PROVIDER"),  # Huawei routes +86, has no version
        ("login", "CN", A, ALIYUN_ONLY, "PROVIDER_CANNOT_CARRY"),
    ],
)
def test_refusals_say_why(
    template: str | None, region: str, pin: ProviderName | None, registered: ProviderTemplates | None, code: str
) -> None:
    refusal = route(template, region, pin, registered=registered)
    assert isinstance(refusal, RouteRefusal)
    assert refusal.code == code
    assert refusal.message


# ---- registered templates ----


@pytest.mark.parametrize(
    ("region", "registered", "expected"),
    [
        ("HK", EVERYWHERE, (T, H, A)),  # the table's whole list: a failover can go to any of them
        ("CN", EVERYWHERE, (H,)),
        ("HK", TENCENT_ONLY, (T,)),
        ("SG", ALIYUN_ONLY, (A,)),  # Alibaba carries a registered template as its text
    ],
)
def test_a_registered_template_goes_where_the_registry_has_it(
    region: str, registered: ProviderTemplates, expected: tuple[ProviderName, ...]
) -> None:
    assert route("login", region, registered=registered) == Routed(expected[0], expected)


def test_an_unregistered_id_gets_one_provider_however_the_list_is_weighted() -> None:
    weighted = table({"default": {"text": entries(A), "template": entries((H, 1), (T, 99))}})
    for seq in range(200):
        assert route("1234567", routes=weighted, message_id=f"B.{seq:05d}") == Routed(H, (H,))


# ---- countries and message types ----

CUSTOM = table(
    {
        "default": {
            "text": entries(A),
            "template": entries(T, H),
            "types": {"OTP": {"template": entries(H, T)}},
        },
        "countries": {
            "SG": {"template": entries(H), "types": {"MKT": {"template": entries(T)}}},
            "GB": {"types": {"NOTIFY": {"template": entries(A, H)}}},
        },
    }
)


@pytest.mark.parametrize(
    ("region", "message_type", "expected"),
    [
        ("HK", MessageType.NOTIFY, (T, H)),  # default
        ("HK", MessageType.OTP, (H, T)),  # default's type override
        ("SG", MessageType.NOTIFY, (H,)),  # the country's list
        ("SG", MessageType.OTP, (H,)),  # a country's list wins over the default's type override
        ("SG", MessageType.MKT, (T,)),  # the country's type override wins over everything
        ("GB", MessageType.NOTIFY, (A, H)),
        ("GB", MessageType.OTP, (H, T)),  # no GB list for OTP: the default's OTP list
        ("CN", MessageType.NOTIFY, (H,)),  # the default list, without what cannot reach +86
    ],
)
def test_country_and_type_lists(region: str, message_type: MessageType, expected: tuple[ProviderName, ...]) -> None:
    result = route("login", region, registered=EVERYWHERE, routes=CUSTOM, message_type=message_type)
    assert result == Routed(expected[0], expected)


def test_a_region_the_table_does_not_name_and_no_region_use_the_default() -> None:
    assert CUSTOM.lookup("ZZ", "template", MessageType.NOTIFY).providers == (T, H)
    assert CUSTOM.lookup(None, "template", MessageType.OTP).providers == (H, T)


# ---- weights ----

WEIGHTED = table({"default": {"text": entries(A), "template": entries((T, 70), (H, 30), A)}})


def draws(routes: RouteTable, region: str = "HK", count: int = 20_000) -> Counter[Routed]:
    router = SpecRouter(routes, "template", MessageType.NOTIFY, template_id="login", registered=EVERYWHERE)
    results: Counter[Routed] = Counter()
    for seq in range(count):
        result = router.route(region, COUNTRY_CODES[region], f"01M8BN2E80SGYXT3HM87TN3BHV.{seq:05d}")
        assert isinstance(result, Routed)
        results[result] += 1
    return results


def test_weights_split_recipients_in_proportion() -> None:
    results = draws(WEIGHTED)
    # The unweighted entry is failover only; each draw's route is the drawn provider, then the rest in order.
    assert set(results) == {Routed(T, (T, H, A)), Routed(H, (H, T, A))}
    assert results[Routed(T, (T, H, A))] / 20_000 == pytest.approx(0.70, abs=0.015)


def test_a_weighted_draw_is_the_same_every_time_for_one_message_id() -> None:
    ids = [f"B{n}.{seq:05d}" for n in range(3) for seq in range(100)]
    first = [route("login", registered=EVERYWHERE, routes=WEIGHTED, message_id=i) for i in ids]
    again = [route("login", registered=EVERYWHERE, routes=WEIGHTED, message_id=i) for i in ids]
    assert first == again
    assert {r.provider for r in first if isinstance(r, Routed)} == {T, H}


def test_weight_zero_is_failover_only() -> None:
    routes = table({"default": {"text": entries(A), "template": entries((T, 0), (H, 5))}})
    assert set(draws(routes, count=500)) == {Routed(H, (H, T))}


def test_weights_of_providers_that_cannot_carry_it_are_left_out() -> None:
    # +86: only Huawei; for a template only Tencent has, only Tencent.
    assert set(draws(WEIGHTED, region="CN", count=500)) == {Routed(H, (H,))}
    router = SpecRouter(WEIGHTED, "template", MessageType.NOTIFY, template_id="login", registered=TENCENT_ONLY)
    assert {router.route("HK", 852, f"B.{seq:05d}") for seq in range(500)} == {Routed(T, (T,))}


def test_a_three_way_split() -> None:
    routes = table({"default": {"text": entries(A), "template": entries((A, 1), (T, 1), (H, 2))}})
    results = Counter({r.provider: n for r, n in draws(routes).items()})
    assert [results[p] / 20_000 for p in (A, T, H)] == pytest.approx([0.25, 0.25, 0.5], abs=0.015)
