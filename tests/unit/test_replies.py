"""Replies: keyword matching (case, spacing, languages, data not code), each provider's reply format, and what a
reply does (stored once, keyword applied, forwarded as message.received)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from globesms.consent import optouts
from globesms.domain.clock import iso
from globesms.models.outbound import ProviderName
from globesms.models.webhooks import WebhookDelivery
from globesms.providers.aliyun import replies as aliyun
from globesms.providers.huawei import replies as huawei
from globesms.providers.tencent import replies as tencent
from globesms.replies.keywords import KeywordAction, keyword_sets, parse_keywords, shipped
from globesms.replies.models import ReplyBodyInvalid
from globesms.replies.record import ReplyDeps, page, record_replies
from tests.unit.test_consent_optouts import MemoryOptOuts

NOW = datetime(2026, 12, 5, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "keyword", "action"),
    [
        ("STOP", "STOP", KeywordAction.OPT_OUT),
        ("stop", "STOP", KeywordAction.OPT_OUT),
        ("  Stop \n", "STOP", KeywordAction.OPT_OUT),
        ("\uff33\uff34\uff2f\uff30", "STOP", KeywordAction.OPT_OUT),  # full-width, as Chinese phones type it
        ("unsubscribe", "UNSUBSCRIBE", KeywordAction.OPT_OUT),
        ("StopAll", "STOPALL", KeywordAction.OPT_OUT),
        ("退订", "退订", KeywordAction.OPT_OUT),
        (" 退订 ", "退订", KeywordAction.OPT_OUT),
        ("td", "TD", KeywordAction.OPT_OUT),
        ("t", "T", KeywordAction.OPT_OUT),
        ("R", "R", KeywordAction.OPT_OUT),  # Huawei's documented marketing opt-out reply
        ("quit", "QUIT", KeywordAction.OPT_OUT),
        # Punctuation around the word, a traditional-character 退訂 (Hong Kong, Taiwan), invisible characters a
        # keyboard put in front: each of these people asked to be removed.
        ("Stop.", "STOP", KeywordAction.OPT_OUT),
        ("STOP!", "STOP", KeywordAction.OPT_OUT),
        ("stop all", "STOP ALL", KeywordAction.OPT_OUT),
        ("退订。", "退订", KeywordAction.OPT_OUT),
        ("退訂", "退訂", KeywordAction.OPT_OUT),
        ("\ufeffSTOP", "STOP", KeywordAction.OPT_OUT),
        ("\u200bstop\u200b", "STOP", KeywordAction.OPT_OUT),
        ("« Stop »", "STOP", KeywordAction.OPT_OUT),
        # Symbols and emoji around it (until 2026-12-07 such a reply was only stored, the person still texted).
        ("STOP 🛑", "STOP", KeywordAction.OPT_OUT),
        ("<STOP>", "STOP", KeywordAction.OPT_OUT),
        ("STOP+", "STOP", KeywordAction.OPT_OUT),
        ("stop ✋🏽", "STOP", KeywordAction.OPT_OUT),  # a skin-tone modifier
        ("❤️ START ❤️", "START", KeywordAction.OPT_IN),  # with its variation selector
        ("Start!", "START", KeywordAction.OPT_IN),
        ("start", "START", KeywordAction.OPT_IN),
        ("Unstop", "UNSTOP", KeywordAction.OPT_IN),
        ("yes", "YES", KeywordAction.OPT_IN),
    ],
)
def test_keywords_match_whatever_the_case_and_spacing(text: str, keyword: str, action: KeywordAction) -> None:
    assert shipped().match(text) == (keyword, action)


@pytest.mark.parametrize(
    "text",
    [
        "please stop",
        "STOP IT",
        "stopp",
        "the end",
        "",
        "   ",
        "T T",
        "是",
        "S.T.O.P",
        "?!",
        "stop, thanks",
        "🛑",
        "STOP😡NOW",
        *("R$", "T👍", "£T", "R ✔️"),  # a single letter among symbols is no opt-out
    ],
)
def test_a_keyword_inside_a_sentence_is_not_one(text: str) -> None:
    assert shipped().match(text) is None


def test_an_override_keyword_written_with_a_symbol_matches_as_written_first() -> None:
    """An override that worked before symbols were trimmed still loads and means what it said: "🛑" opts out, and
    "STOP+" in opt_in is not the opt_out STOP (refused as shared until a review of the trimming caught it: every
    reply push then failed on the setting)."""
    custom = keyword_sets(json.dumps({"opt_out": ["STOP", "🛑"], "opt_in": ["STOP+"]}))
    assert custom.match("🛑") == ("🛑", KeywordAction.OPT_OUT)
    assert custom.match("stop+") == ("STOP+", KeywordAction.OPT_IN)
    assert custom.match("STOP 🛑") == ("STOP", KeywordAction.OPT_OUT)
    assert custom.match("🙂") is None


def test_the_keyword_sets_are_data_an_override_replaces_them() -> None:
    custom = keyword_sets(json.dumps({"opt_out": ["ALTO", "arrêter"], "opt_in": ["OUI"]}))
    assert custom.match("alto") == ("ALTO", KeywordAction.OPT_OUT)
    assert custom.match("ARRÊTER") == ("arrêter", KeywordAction.OPT_OUT)
    assert custom.match("STOP") is None
    assert keyword_sets("") == shipped()


@pytest.mark.parametrize(
    ("document", "rule"),
    [
        ('{"opt_out": []}', "opt_out"),
        ('{"opt_out": ["STOP"], "stop": ["x"]}', "stop"),
        ('{"opt_out": ["STOP"], "opt_in": ["stop"]}', "share keywords"),
        ("not json", "keywords"),
    ],
)
def test_a_bad_override_is_refused_naming_its_rule(document: str, rule: str) -> None:
    with pytest.raises(ValueError, match=rule):
        parse_keywords(document)


# ---------------------------------------------------------------------------- the providers' formats

TENCENT = {"extend": "", "mobile": "91234567", "nationcode": "65", "sign": "Acme", "text": "STOP", "time": 1796460000}
ALIYUN = [
    {
        "phone_number": "6591234567",
        "send_time": "2026-12-05 17:30:00",
        "content": "TD",
        "sign_name": "Acme",
        "dest_code": "1234",
        "sequence_id": 1234,
    },
    {"phone_number": "+85251234567", "send_time": "2026-12-05 17:31:00", "content": "hello", "sequence_id": "1235"},
]
HUAWEI = {
    "smsMsgId": "2ea20735-f856-4376-afbf-570bd70a46ee_11840135",
    "from": "+8613800138000",
    "to": "10690000",
    "body": "R",
    "createTime": "2026-12-05T09:30:00Z",
}


def test_tencent_one_object_per_push() -> None:
    (reply,) = tencent.parse_replies(json.dumps(TENCENT).encode()).replies
    assert (reply.from_number, reply.text, reply.to) == ("+6591234567", "STOP", "Acme")
    assert reply.sent_at == "2026-12-05T08:40:00.000000Z"
    with pytest.raises(ReplyBodyInvalid):
        tencent.parse_replies(json.dumps([TENCENT]).encode())


def test_alibaba_an_array_with_sequence_ids_as_numbers_or_strings_in_beijing_time() -> None:
    parsed = aliyun.parse_replies(json.dumps(ALIYUN).encode())
    assert [(r.from_number, r.text, r.sent_at) for r in parsed.replies] == [
        ("+6591234567", "TD", "2026-12-05T09:30:00.000000Z"),
        ("+85251234567", "hello", "2026-12-05T09:31:00.000000Z"),
    ]
    as_string = aliyun.parse_replies(json.dumps([{**ALIYUN[0], "sequence_id": "1234"}]).encode())
    assert as_string.replies[0].reply_id == parsed.replies[0].reply_id  # one reply, however the id was written
    # The reply's identity names the time as Alibaba sent it (Beijing): the ids of replies stored earlier hold.
    assert parsed.replies[0].provider_ref == "1234|+6591234567|2026-12-05T17:30:00+08:00"


def test_alibaba_bad_items_are_skipped_and_good_ones_kept() -> None:
    body = [ALIYUN[0], {**ALIYUN[1], "phone_number": "12"}, {**ALIYUN[1], "send_time": "yesterday"}, 7]
    parsed = aliyun.parse_replies(json.dumps(body).encode())
    assert len(parsed.replies) == 1
    assert [r.split(":")[0] for r in parsed.refused_items] == ["item 1", "item 2", "item 3"]
    assert all("12" not in r.split(":", 1)[1] for r in parsed.refused_items)  # the input is never quoted


def test_huawei_as_a_form_or_json() -> None:
    from urllib.parse import urlencode

    form = huawei.parse_replies(urlencode(HUAWEI).encode(), "application/x-www-form-urlencoded")
    as_json = huawei.parse_replies(json.dumps(HUAWEI).encode(), "application/json")
    assert form == as_json
    (reply,) = form.replies
    assert (reply.from_number, reply.text, reply.to, reply.provider_ref) == (
        "+8613800138000",
        "R",
        "10690000",
        HUAWEI["smsMsgId"],
    )


def test_a_huawei_reply_form_giving_a_field_twice_is_refused_naming_it() -> None:
    """The last value won: `from=<the sender>&...&from=<another>` put the other number on the opt-out list (a
    review). Which value is the reply's is anyone's guess: refused (400), nothing stored."""
    from urllib.parse import urlencode

    body = urlencode({**HUAWEI, "body": "TD"}) + "&from=%2B8613900139000"
    with pytest.raises(ReplyBodyInvalid, match=r"^from: field given more than once$"):
        huawei.parse_replies(body.encode(), "application/x-www-form-urlencoded")
    unknown_twice = urlencode(HUAWEI) + "&extra=1&extra=2"  # a field no reply is read from: ignored, as before
    assert len(huawei.parse_replies(unknown_twice.encode(), "application/x-www-form-urlencoded").replies) == 1
    # The same through the JSON form of the push, and under the model's own name of the field.
    as_json = json.dumps({**HUAWEI, "body": "TD"})[:-1] + ', "from": "+8613900139000"}'
    with pytest.raises(ReplyBodyInvalid, match=r"^from: field given more than once$"):
        huawei.parse_replies(as_json.encode(), "application/json")
    by_name = urlencode(HUAWEI) + "&from_number=%2B8613900139000"
    with pytest.raises(ReplyBodyInvalid, match=r"^from, from_number: field given more than once$"):
        huawei.parse_replies(by_name.encode(), "application/x-www-form-urlencoded")


@pytest.mark.parametrize(
    ("parse", "body", "repeated"),
    [
        (tencent.parse_replies, json.dumps({**TENCENT, "text": "START"})[:-1] + ', "mobile": "91234568"}', "mobile"),
        (
            aliyun.parse_replies,
            json.dumps([{**ALIYUN[0], "content": "START"}])[:-2] + ', "phone_number": 1}]',
            "phone_number",
        ),
    ],
)
def test_a_tencent_or_alibaba_reply_giving_a_field_twice_is_refused_as_huaweis_is(
    parse: Any, body: str, repeated: str
) -> None:
    """json.loads kept the last: the number a log or a firewall in front reads (the first) was not the one whose
    opt-out the reply changed (a review; Huawei's reader refused it already). A key no reply is read from may repeat."""
    with pytest.raises(ReplyBodyInvalid, match=rf"^{repeated}: field given more than once$"):
        parse(body.encode())
    unknown_twice = json.dumps(TENCENT)[:-1] + ', "extra": 1, "extra": 2}'
    assert len(tencent.parse_replies(unknown_twice.encode()).replies) == 1


@pytest.mark.parametrize(
    ("parse", "body", "content_type"),
    [
        (aliyun.parse_replies, json.dumps([{**ALIYUN[0], "send_time": "0001-01-01 00:00:00"}]).encode(), ""),
        (
            huawei.parse_replies,
            b"smsMsgId=m1&from=%2B6591234567&body=STOP&createTime=0001-01-01T00:00:00%2B08:00",
            "application/x-www-form-urlencoded",
        ),
        (
            huawei.parse_replies,
            json.dumps({**HUAWEI, "createTime": "9999-12-31T23:59:59-08:00"}).encode(),
            "application/json",
        ),
    ],
)
def test_a_time_that_is_no_time_in_utc_refuses_its_item_not_the_push(
    parse: Any, body: bytes, content_type: str
) -> None:
    # Year 0 or 10000 in UTC: converting it raised OverflowError out of the parser, a 500 for every good reply of
    # the push, and again on each of the provider's retries.
    parsed = parse(body, content_type)
    assert parsed.replies == []
    assert [r.split(":")[0] for r in parsed.refused_items] == ["item 0"]
    assert "between the years 1 and 9999" in parsed.refused_items[0]


def test_alibaba_a_time_out_of_range_skips_only_its_item() -> None:
    body = [{**ALIYUN[0], "send_time": "0001-01-01 00:00:00"}, ALIYUN[1]]
    parsed = aliyun.parse_replies(json.dumps(body).encode())
    assert [r.text for r in parsed.replies] == ["hello"] and len(parsed.refused_items) == 1


@pytest.mark.parametrize(
    ("parse", "body"),
    [
        (tencent.parse_replies, b"{"),
        (aliyun.parse_replies, b'{"phone_number": "1"}'),
        (aliyun.parse_replies, b"NaN"),
        (huawei.parse_replies, b"\xff\xfe"),
        (huawei.parse_replies, b"[]"),
    ],
)
def test_a_body_not_in_the_format_is_unreadable(parse: Any, body: bytes) -> None:
    with pytest.raises(ReplyBodyInvalid):
        parse(body)


# ---------------------------------------------------------------------------- what a reply does


class MemoryReplies:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}

    def get_reply(self, owner: str, sk: str) -> dict[str, Any] | None:
        return self.items.get((owner, sk))

    def put_reply(self, owner: str, sk: str, item: dict[str, Any]) -> dict[str, Any] | None:
        if (owner, sk) in self.items:
            return self.items[(owner, sk)]
        self.items[(owner, sk)] = dict(item)
        return None

    def mark_reply_handled(self, owner: str, sk: str) -> None:
        self.items[(owner, sk)]["handled"] = True

    def page_replies(self, owner: str, *, after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        keys = sorted(k for o, k in self.items if o == owner and (after is None or k > after))
        return [self.items[(owner, k)] for k in keys[:limit]], (keys[limit - 1] if len(keys) > limit else None)


class MemoryWebhooks:
    def __init__(self) -> None:
        self.sent: list[WebhookDelivery] = []

    def send_webhooks(self, deliveries: Any) -> None:
        self.sent.extend(deliveries)


def deps(
    callback: str = "https://example.com/replies",
) -> tuple[ReplyDeps, MemoryReplies, MemoryOptOuts, MemoryWebhooks]:
    replies, opt_outs, webhooks = MemoryReplies(), MemoryOptOuts(), MemoryWebhooks()
    return ReplyDeps(replies, opt_outs, webhooks, shipped(), callback, 90), replies, opt_outs, webhooks


def test_a_reply_listed_as_an_opt_out_took_effect_even_when_every_push_of_it_failed() -> None:
    """Stored before its keyword was applied, a STOP whose keyword write failed on every push of it (a throttled
    table; Tencent pushes three times) was listed by GET /v1/replies as an opt-out while its number was not on the
    list, and nothing finished it (found by a review). Now its keyword is applied before it is stored."""
    wired, replies, opt_outs, webhooks = deps()
    apply = opt_outs.apply_keyword

    def throttled(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("ProvisionedThroughputExceededException")

    opt_outs.apply_keyword = throttled  # type: ignore[method-assign]
    push = tencent.parse_replies(json.dumps(TENCENT).encode()).replies
    for _ in range(3):
        with pytest.raises(RuntimeError):  # answered 5xx: Tencent pushes it again, twice
            record_replies(push, wired, NOW)
    assert (page(replies, after=None, limit=10).replies, webhooks.sent) == ([], [])

    opt_outs.apply_keyword = apply  # type: ignore[method-assign]
    webhooks_down = webhooks.send_webhooks

    def queue_down(deliveries: Any) -> None:
        raise RuntimeError("SQS unavailable")

    webhooks.send_webhooks = queue_down  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):  # the keyword applied, the reply stored, its event not queued
        record_replies(push, wired, NOW)
    assert optouts.get(opt_outs, "+6591234567") is not None
    assert [r.action for r in page(replies, after=None, limit=10).replies] == ["opt_out"]

    webhooks.send_webhooks = webhooks_down  # type: ignore[method-assign]
    again = record_replies(push, wired, NOW)  # the next push finishes it as it was stored
    assert (again.stored, again.duplicates, len(webhooks.sent)) == (0, 0, 1)
    assert record_replies(push, wired, NOW).duplicates == 1


def test_a_stop_reply_lists_the_number_and_is_forwarded_once_however_often_it_is_pushed() -> None:
    wired, replies, opt_outs, webhooks = deps()
    parsed = aliyun.parse_replies(json.dumps(ALIYUN).encode()).replies
    first = record_replies(parsed, wired, NOW)
    again = record_replies(parsed, wired, NOW)  # Alibaba's retry after a minute
    assert (first.stored, first.opted_out, first.duplicates) == (2, 1, 0)
    assert (again.stored, again.opted_out, again.duplicates) == (0, 0, 2)
    entry = optouts.get(opt_outs, "+6591234567")
    assert entry is not None
    assert (entry.source, entry.provider, entry.keyword) == ("reply", "aliyun", "TD")
    assert [d.event.type for d in webhooks.sent] == ["message.received", "message.received"]
    event = webhooks.sent[0].event
    assert event.message["from"] == "+6591234567" and event.message["action"] == "opt_out"
    assert [r.text for r in page(replies, after=None, limit=10).replies] == ["TD", "hello"]


def test_a_reply_stored_by_an_attempt_that_stopped_is_finished_by_the_next() -> None:
    wired, replies, opt_outs, webhooks = deps()
    parsed = tencent.parse_replies(json.dumps(TENCENT).encode()).replies
    key = next(iter(replies.items)) if replies.items else None
    assert key is None
    replies.put_reply("default", f"{parsed[0].sent_at}#{parsed[0].reply_id}", {
        "id": parsed[0].reply_id, "provider": "tencent", "from": "+6591234567", "to": None, "text": "STOP",
        "sent_at": parsed[0].sent_at, "received_at": "x", "keyword": "STOP", "action": "opt_out", "handled": False,
    })  # fmt: skip
    result = record_replies(parsed, wired, NOW)
    assert (result.stored, result.duplicates, result.opted_out) == (0, 0, 1)
    assert len(webhooks.sent) == 1 and optouts.get(opt_outs, "+6591234567") is not None


def test_an_older_stop_pushed_again_after_a_newer_start_does_not_opt_the_number_out() -> None:
    # The person texts STOP, then START a minute later. The STOP push was not acknowledged (a 5xx, a timeout), so
    # the provider pushes it again (Alibaba: after 1, 5 and 10 minutes) after the START was applied.
    wired, _replies, opt_outs, _webhooks = deps(callback="")
    stop = {**TENCENT, "text": "STOP"}
    start = {**TENCENT, "text": "START", "time": TENCENT["time"] + 60}
    results = [record_replies(tencent.parse_replies(json.dumps(b).encode()).replies, wired, NOW) for b in (start, stop)]
    assert optouts.get(opt_outs, "+6591234567") is None  # the person's latest word is START
    assert [(r.stored, r.opted_out, r.stale_keywords) for r in results] == [(1, 0, 0), (1, 0, 1)]


def test_an_older_start_pushed_again_after_a_newer_stop_does_not_opt_the_number_back_in() -> None:
    wired, _replies, opt_outs, _webhooks = deps(callback="")
    optouts.add(opt_outs, optouts.OptOutEntry(number="+6591234567", added_at="t", source=optouts.OptOutSource.API))
    start = {**TENCENT, "text": "START"}
    stop = {**TENCENT, "text": "STOP", "time": TENCENT["time"] + 60}
    for body in (stop, start):  # the newer STOP first; the older START retried after it
        record_replies(tencent.parse_replies(json.dumps(body).encode()).replies, wired, NOW)
    assert optouts.get(opt_outs, "+6591234567") is not None  # else marketing would resume


def huawei_reply(text: str, created: str) -> list[Any]:
    body = json.dumps({**HUAWEI, "body": text, "createTime": created}).encode()
    return huawei.parse_replies(body, "application/json").replies


@pytest.mark.parametrize("created", ["0999-01-01T00:00:00Z", "0005-06-07T00:00:00Z"])
def test_a_keyword_dated_before_the_year_1000_is_older_than_one_sent_today(created: str) -> None:
    # Written with fewer than four digits of year, "999-01-01" sorted after "2026-..." as text: such a START won over
    # the person's later STOP, and then every later keyword of that number was stale.
    wired, replies, opt_outs, _webhooks = deps(callback="")
    record_replies(huawei_reply("STOP", "2026-12-05T09:29:00Z"), wired, NOW)
    late = record_replies(huawei_reply("START", created), wired, NOW)
    assert optouts.get(opt_outs, "+8613800138000") is not None and late.stale_keywords == 1
    assert [r.sent_at[:4] for r in page(replies, after=None, limit=10).replies] == [created[:4], "2026"]


def test_a_keyword_dated_after_it_reached_us_counts_as_sent_when_it_reached_us() -> None:
    wired, _replies, opt_outs, _webhooks = deps(callback="")
    record_replies(huawei_reply("START", "2999-01-01T00:00:00Z"), wired, NOW)  # a clock gone wrong, or forged
    later = NOW.replace(minute=31)
    stop = record_replies(huawei_reply("STOP", "2026-12-05T09:31:00Z"), wired, later)
    assert optouts.get(opt_outs, "+8613800138000") is not None  # the person's later STOP holds
    assert (stop.opted_out, stop.stale_keywords) == (1, 0)


def test_a_providers_clock_a_little_ahead_keeps_the_order_of_two_keywords() -> None:
    # Its clock 5 s ahead: the person sends STOP, then START 3 s later; START reaches us first. Clamping each to its
    # arrival would make the STOP (arriving later, but dated before the START's arrival) win.
    wired, _replies, opt_outs, _webhooks = deps(callback="")
    record_replies(huawei_reply("START", "2026-12-05T09:30:08Z"), wired, NOW.replace(second=3))
    record_replies(huawei_reply("STOP", "2026-12-05T09:30:05Z"), wired, NOW.replace(second=4))
    assert optouts.get(opt_outs, "+8613800138000") is None  # the person's last word: START


def test_a_stop_after_a_start_dated_minutes_ahead_holds() -> None:
    wired, _replies, opt_outs, _webhooks = deps(callback="")
    record_replies(huawei_reply("START", "2026-12-05T10:00:00Z"), wired, NOW)  # arrived 09:30, dated half an hour on
    stop = record_replies(huawei_reply("STOP", "2026-12-05T09:35:00Z"), wired, NOW.replace(minute=35))
    assert optouts.get(opt_outs, "+8613800138000") is not None and stop.stale_keywords == 0


def test_start_takes_the_number_off_and_a_plain_reply_is_only_stored() -> None:
    wired, replies, opt_outs, webhooks = deps(callback="")
    optouts.add(opt_outs, optouts.OptOutEntry(number="+6591234567", added_at="t", source=optouts.OptOutSource.API))
    start = {**TENCENT, "text": " start ", "time": TENCENT["time"] + 60}
    hello = {**TENCENT, "text": "thanks", "time": TENCENT["time"] + 120}
    for body in (start, hello):
        record_replies(tencent.parse_replies(json.dumps(body).encode()).replies, wired, NOW)
    assert optouts.get(opt_outs, "+6591234567") is None
    assert webhooks.sent == []  # no callback configured: stored, not forwarded
    assert [(r.text, r.action) for r in page(replies, after=None, limit=10).replies] == [
        (" start ", "opt_in"),
        ("thanks", None),
    ]
    assert {r.provider for r in page(replies, after=None, limit=10).replies} == {ProviderName.TENCENT}


def test_a_huawei_reply_without_its_optional_create_time_is_kept_as_sent_when_it_arrived() -> None:
    """Huawei sends createTime only once the application is set to send it (是否必选: 否); its own sample has none.
    Required until 2026-12-07: every reply of such an application, an opt-out among them, was refused and lost."""
    body = b"from=%2B8615123456789&to=10690000&body=TD&smsMsgId=9692b5be-c427-4525-8e73-cf4a6ac5b3f7"
    (reply,) = huawei.parse_replies(body, "application/x-www-form-urlencoded").replies
    assert (reply.from_number, reply.text, reply.sent_at) == ("+8615123456789", "TD", None)  # the provider's: none
    wired, replies, _, _ = deps(callback="")
    assert record_replies([reply], wired, NOW).opted_out == 1
    assert [r.sent_at for r in page(replies, after=None, limit=10).replies] == [iso(NOW)]  # when it arrived


HUAWEI_TD = b"from=%2B8615123456789&to=10690000&body=TD&smsMsgId=9692b5be-c427-4525-8e73-cf4a6ac5b3f7"
HUAWEI_START = b"from=%2B8615123456789&to=10690000&body=START&smsMsgId=11111111-c427-4525-8e73-cf4a6ac5b3f7"


def _huawei_push(body: bytes, wired: ReplyDeps, at: datetime) -> Any:
    return record_replies(huawei.parse_replies(body, "application/x-www-form-urlencoded").replies, wired, at)


def test_a_huawei_reply_without_create_time_pushed_again_is_a_repeat_and_keeps_its_place() -> None:
    """Without createTime a reply is taken as sent when it first arrived, and a repeat finds that time: pushed again,
    it is a duplicate, and a START pushed again after a later STOP does not opt the number back in. Keyed by each
    push's arrival, a repeat was a new reply (found by a review of the change that accepted such replies)."""
    wired, replies, opt_outs, _ = deps(callback="")
    _huawei_push(HUAWEI_START, wired, NOW)
    _huawei_push(HUAWEI_TD, wired, NOW + timedelta(minutes=1))
    again = _huawei_push(HUAWEI_START, wired, NOW + timedelta(minutes=5))  # the START's push, repeated
    assert (again.stored, again.duplicates) == (0, 1)
    assert optouts.get(opt_outs, "+8615123456789") is not None
    listed = page(replies, after=None, limit=10).replies
    assert [(r.text, r.sent_at) for r in listed] == [("START", iso(NOW)), ("TD", iso(NOW + timedelta(minutes=1)))]
