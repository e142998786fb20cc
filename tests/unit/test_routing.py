import pytest

from globesms.models.outbound import ProviderName
from globesms.routing import RouteRefusal, choose_provider


@pytest.mark.parametrize(
    ("is_template", "country", "pin", "expected"),
    [
        (False, 852, None, ProviderName.ALIYUN),
        (True, 852, None, ProviderName.TENCENT),
        (True, 86, None, ProviderName.HUAWEI),
        (True, 852, ProviderName.HUAWEI, ProviderName.HUAWEI),
        (False, 65, ProviderName.ALIYUN, ProviderName.ALIYUN),
    ],
)
def test_routes(is_template: bool, country: int, pin: ProviderName | None, expected: ProviderName) -> None:
    assert choose_provider(is_template=is_template, country_code=country, pin=pin) is expected


@pytest.mark.parametrize(
    ("is_template", "country", "pin", "code"),
    [
        (False, 86, None, "NO_ROUTE"),  # free text to the mainland: only Huawei goes there, templates only
        (True, 86, ProviderName.TENCENT, "PROVIDER_CANNOT_CARRY"),
        (False, 852, ProviderName.TENCENT, "PROVIDER_CANNOT_CARRY"),
        (True, 852, ProviderName.ALIYUN, "PROVIDER_CANNOT_CARRY"),
    ],
)
def test_refusals_say_why(is_template: bool, country: int, pin: ProviderName | None, code: str) -> None:
    route = choose_provider(is_template=is_template, country_code=country, pin=pin)
    assert isinstance(route, RouteRefusal)
    assert route.code == code
    assert route.message
