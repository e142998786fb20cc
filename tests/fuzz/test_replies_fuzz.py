"""Reply pushes in each provider's own format (real, mutated, or anything at all) through each provider's parser and
what a reply does (against in-memory stores).

Whatever the body: replies, bad items each with a reason naming its index, or `ReplyBodyInvalid` (the handler's 400)
— never another exception (the handler's 5xx, which makes a provider push again forever); every reply kept has an
E.164 number; and the same push again stores, lists and forwards nothing new.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from globesms.providers.aliyun import replies as aliyun
from globesms.providers.huawei import replies as huawei
from globesms.providers.tencent import replies as tencent
from globesms.replies.models import ParsedReplies, ReplyBodyInvalid
from globesms.replies.record import record_replies
from tests.unit.test_replies import deps

EVENTS = Path(__file__).resolve().parents[2] / "events"
PARSERS = {"aliyun": aliyun.parse_replies, "tencent": tencent.parse_replies, "huawei": huawei.parse_replies}
NOW = datetime(2026, 12, 5, 9, 30, tzinfo=UTC)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=20,
)
FIELDS = {
    "aliyun": ["phone_number", "send_time", "content", "sign_name", "dest_code", "sequence_id"],
    "tencent": ["extend", "mobile", "nationcode", "sign", "text", "time"],
    "huawei": ["smsMsgId", "from", "to", "body", "createTime"],
}


def real_item(provider: str) -> dict[str, Any]:
    request = json.loads((EVENTS / f"replies_{provider}.json").read_text())
    if provider == "huawei":
        from urllib.parse import parse_qsl

        return dict(parse_qsl(request["body"]))
    body = json.loads(request["body"])
    return body[0] if isinstance(body, list) else body


@st.composite
def mutated_push(draw: st.DrawFn) -> tuple[str, bytes, str]:
    provider = draw(st.sampled_from(sorted(PARSERS)))
    item = real_item(provider)
    for name in draw(st.lists(st.sampled_from(FIELDS[provider]), max_size=3)):
        if draw(st.booleans()):
            item.pop(name, None)
        else:
            item[name] = draw(json_values)
    body: Any = [item, draw(json_values)] if provider == "aliyun" else item
    return provider, json.dumps(body).encode(), "application/json"


any_push = st.tuples(
    st.sampled_from(sorted(PARSERS)),
    st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()),
    st.sampled_from(["application/json", "application/x-www-form-urlencoded", ""]),
)


def check(provider: str, body: bytes, content_type: str) -> None:
    try:
        parsed = PARSERS[provider](body, content_type)
    except ReplyBodyInvalid:
        return
    assert isinstance(parsed, ParsedReplies)
    for reason in parsed.refused_items:
        assert reason.startswith("item ")
    for reply in parsed.replies:
        assert reply.from_number.startswith("+") and reply.from_number[1:].isdigit()
    wired, replies, opt_outs, webhooks = deps()
    first = record_replies(parsed.replies, wired, NOW)
    stored, listed, sent = len(replies.items), dict(opt_outs.entries), len(webhooks.sent)
    again = record_replies(parsed.replies, wired, NOW)
    assert again.stored == 0 and again.duplicates == first.stored + first.duplicates
    assert (len(replies.items), opt_outs.entries, len(webhooks.sent)) == (stored, listed, sent)


@settings(max_examples=300, deadline=None)
@given(mutated_push())
def test_mutated_real_pushes(push: tuple[str, bytes, str]) -> None:
    check(*push)


@settings(max_examples=300, deadline=None)
@given(any_push)
def test_anything_at_all(push: tuple[str, bytes, str]) -> None:
    check(*push)
