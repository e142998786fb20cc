"""Sample data several test modules share (kept here so a change to its shape is made once)."""

from __future__ import annotations

from globesms.routing.templates import parse_registry

#: A registry with one template every provider has (`login`, parameters in different orders per provider) and one
#: only Tencent has (`promo`).
REGISTRY = parse_registry(
    {
        "version": 1,
        "templates": {
            "login": {
                "aliyun": {"text": "Acme: your code is {code} ({minutes} min)"},
                "tencent": {"id": "1800308", "params": ["code", "minutes"]},
                "huawei": {"id": "tplLogin", "params": ["minutes", "code"]},
            },
            "promo": {"tencent": {"id": "1800309", "params": []}},
        },
    },
    "test",
)
