import pytest

from globesms.models.outbound import ProviderName
from globesms.routing import RouteRefusal, choose_provider


@pytest.mark.parametrize(
    ("template", "country", "pin", "expected"),
    [
        (None, 852, None, ProviderName.ALIYUN),
        ("1234567", 852, None, ProviderName.TENCENT),
        ("otp", 852, None, ProviderName.HUAWEI),  # not a Tencent template id: the next provider with templates
        ("1234567", 86, None, ProviderName.HUAWEI),
        ("1234567", 852, ProviderName.HUAWEI, ProviderName.HUAWEI),
        (None, 65, ProviderName.ALIYUN, ProviderName.ALIYUN),
    ],
)
def test_routes(template: str | None, country: int, pin: ProviderName | None, expected: ProviderName) -> None:
    assert choose_provider(template_id=template, country_code=country, pin=pin) is expected


@pytest.mark.parametrize(
    ("template", "country", "pin", "code"),
    [
        (None, 86, None, "NO_ROUTE"),  # free text to the mainland: only Huawei goes there, templates only
        ("1234567", 86, ProviderName.TENCENT, "PROVIDER_CANNOT_CARRY"),
        (None, 852, ProviderName.TENCENT, "PROVIDER_CANNOT_CARRY"),
        ("1234567", 852, ProviderName.ALIYUN, "PROVIDER_CANNOT_CARRY"),
        ("otp", 852, ProviderName.TENCENT, "PROVIDER_CANNOT_CARRY"),
    ],
)
def test_refusals_say_why(template: str | None, country: int, pin: ProviderName | None, code: str) -> None:
    route = choose_provider(template_id=template, country_code=country, pin=pin)
    assert isinstance(route, RouteRefusal)
    assert route.code == code
    assert route.message
