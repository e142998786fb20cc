"""/v1/opt-outs through the local API Gateway against moto with the template's ConsentTable, and accept refusing
an opted-out recipient of an MKT message while an OTP to the same number goes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest

from globesms.aws.dynamodb_consent import DynamoDBConsentStore
from globesms.models.outbound import ProviderName
from globesms.ports import KeywordWrite
from globesms.replies.keywords import shipped
from globesms.replies.models import InboundReply
from globesms.replies.record import ReplyDeps, page, record_replies, reply_sk
from tests.fakes import MemoryWebhooks
from tests.integration.conftest import MotoStack
from tests.integration.gateway import InProcessApi

NOW = datetime(2026, 12, 5, 9, 30, tzinfo=UTC)


@pytest.fixture
def api(load_handler, lambda_context) -> InProcessApi:  # type: ignore[no-untyped-def]
    return InProcessApi(load_handler("send_api").lambda_handler, lambda_context)


def test_a_number_is_listed_read_paged_and_removed(api: InProcessApi) -> None:
    added = api.call("PUT", "/v1/opt-outs/%2B65%209123-4567", body={"reason": "asked by phone"})
    assert added.status == 201, added.body
    assert added.json() == {
        "number": "+6591234567",
        "added_at": added.json()["added_at"],
        "source": "api",
        "reason": "asked by phone",
        "provider": None,
        "keyword": None,
    }
    again = api.call("PUT", "/v1/opt-outs/+6591234567")  # no body: fine; the first entry stays
    assert (again.status, again.json()["reason"]) == (200, "asked by phone")
    assert api.call("GET", "/v1/opt-outs/+65%2091234567").json()["number"] == "+6591234567"
    for number in ("+85251234567", "+447911123456"):
        assert api.call("PUT", f"/v1/opt-outs/{number}").status == 201
    first = api.call("GET", "/v1/opt-outs", query="limit=2").json()
    assert [e["number"] for e in first["opt_outs"]] == ["+447911123456", "+6591234567"]
    rest = api.call("GET", "/v1/opt-outs", query=f"limit=2&after={quote(first['next'])}").json()
    assert ([e["number"] for e in rest["opt_outs"]], rest["next"]) == (["+85251234567"], None)
    assert api.call("DELETE", "/v1/opt-outs/+6591234567").status == 204
    gone = api.call("GET", "/v1/opt-outs/+6591234567")
    assert (gone.status, gone.json()["error"]["code"]) == (404, "NOT_FOUND")
    assert api.call("DELETE", "/v1/opt-outs/+6591234567").status == 404


@pytest.mark.parametrize(
    ("method", "path", "query", "body", "field"),
    [
        ("PUT", "/v1/opt-outs/6591234567", "", None, "path.number"),
        ("GET", "/v1/opt-outs/+6512", "", None, "path.number"),
        ("DELETE", "/v1/opt-outs/hello", "", None, "path.number"),
        ("PUT", "/v1/opt-outs/+6591234567", "", {"why": "x"}, "why"),
        ("PUT", "/v1/opt-outs/+6591234567", "", {"reason": ""}, "reason"),
        ("GET", "/v1/opt-outs", "after=not-a-number", None, "query.after"),
        ("GET", "/v1/opt-outs", "limit=0", None, "query.limit"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    api: InProcessApi, method: str, path: str, query: str, body: object, field: str
) -> None:
    refused = api.call(method, path, query=query, body=body)
    assert refused.status == 422, refused.body
    error = refused.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert [f["field"] for f in error["fields"]] == [field]


def test_an_opted_out_number_gets_no_mkt_but_still_gets_an_otp(api: InProcessApi, stack: MotoStack) -> None:
    assert api.call("PUT", "/v1/opt-outs/+6591234567").status == 201
    mkt = api.call("POST", "/v1/messages", body={"to": ["+6591234567", "+85251234567"], "text": "Sale", "type": "MKT"})
    assert mkt.status == 202, mkt.body
    assert [(e["index"], e["code"]) for e in mkt.json()["errors"]] == [(0, "OPTED_OUT")]
    assert [m["to"] for m in mkt.json()["messages"]] == ["+85251234567"]
    otp = api.call("POST", "/v1/messages", body={"to": "+6591234567", "text": "Code 123456", "type": "OTP"})
    assert (otp.json()["accepted"], otp.json()["errors"]) == (1, [])


def test_the_store_answers_many_numbers_at_once(stack: MotoStack) -> None:
    table = stack.deployed.context.refs["ConsentTable"]
    store = DynamoDBConsentStore(table)
    listed = {f"+6591{n:06d}" for n in range(0, 450, 3)}
    for number in listed:
        assert store.put_opt_out("default", number, {"number": number, "added_at": "t", "source": "api"})
    asked = {f"+6591{n:06d}" for n in range(450)}
    assert store.listed("default", asked) == listed  # 5 BatchGetItem calls of at most 100 keys
    assert store.listed("other-owner", asked) == set()


def test_a_reply_keyword_applies_only_if_no_later_one_was(stack: MotoStack) -> None:
    store = DynamoDBConsentStore(stack.deployed.context.refs["ConsentTable"])
    number, entry = "+6591234567", {"number": "+6591234567", "added_at": "t", "source": "reply", "keyword": "STOP"}
    at = [f"2026-12-05T08:4{m}:00.000000Z" for m in range(5)]

    def keyword(sent_at: str, listing: dict[str, Any] | None) -> KeywordWrite:
        return store.apply_keyword("default", number, sent_at, listing, expires_at=2_000_000_000)

    assert keyword(at[1], None) == KeywordWrite()  # START while not listed: only its time is kept
    assert keyword(at[0], entry) == KeywordWrite(stale=True)  # an older STOP, pushed again: not applied
    assert store.get_opt_out("default", number) is None
    assert keyword(at[3], entry) == KeywordWrite(added=True)
    assert keyword(at[3], entry) == KeywordWrite()  # the same, again (a tie applies: listed already)
    assert keyword(at[2], None) == KeywordWrite(stale=True)  # an older START does not undo the STOP
    assert store.get_opt_out("default", number) == entry
    assert keyword(at[4], None) == KeywordWrite(removed=entry)
    assert store.get_opt_out("default", number) is None
    assert [e["number"] for e in store.page_opt_outs("default", after=None, limit=10)[0]] == []  # list items only


STOP_WITHOUT_TO = InboundReply(
    provider=ProviderName.TENCENT,
    from_number="+6591234567",
    to=None,  # Tencent's extend and sign empty (Huawei without `to`, Alibaba without dest_code and sign_name)
    text="STOP",
    sent_at="2026-12-05T09:29:00.000000Z",
    provider_ref="+6591234567|1796460000|STOP",
)


def reply_deps(store: DynamoDBConsentStore) -> ReplyDeps:
    return ReplyDeps(
        replies=store, opt_outs=store, webhooks=MemoryWebhooks(), keywords=shipped(), callback="", retention_days=30
    )


def test_a_reply_that_names_no_number_it_was_sent_to_is_listed(stack: MotoStack) -> None:
    store = DynamoDBConsentStore(stack.deployed.context.refs["ConsentTable"])
    record_replies([STOP_WITHOUT_TO], reply_deps(store), NOW)
    (listed,) = page(store, after=None, limit=100).replies  # GET /v1/replies
    assert (listed.text, listed.to) == ("STOP", None)


def test_a_half_recorded_stop_that_names_no_number_it_was_sent_to_is_finished_on_the_retry(stack: MotoStack) -> None:
    store = DynamoDBConsentStore(stack.deployed.context.refs["ConsentTable"])
    stored = {
        "id": STOP_WITHOUT_TO.reply_id,
        "provider": "tencent",
        "from": STOP_WITHOUT_TO.from_number,
        "text": "STOP",
        "sent_at": STOP_WITHOUT_TO.sent_at,
        "received_at": "2026-12-05T09:29:01.000000Z",
        "keyword": "STOP",
        "action": "opt_out",
        "handled": False,
        "expires_at": 1_900_000_000,
    }
    store.put_reply("default", reply_sk(STOP_WITHOUT_TO), stored)  # the first attempt stopped after storing it
    record_replies([STOP_WITHOUT_TO], reply_deps(store), NOW)  # the provider's retry
    assert store.listed("default", {"+6591234567"}) == {"+6591234567"}
