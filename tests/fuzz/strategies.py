"""Hypothesis strategies for every external input: API request bodies, SQS intake bodies, and each provider's
delivery receipts in its own push format.

Each input comes three ways: well-formed (real bodies, as clients and providers send them), near-valid (a real
body with a few mutations: a field dropped, retyped, stretched past its limit, or replaced by nonsense), and
arbitrary (any JSON, any text, any bytes). Near-valid inputs are what find bugs: arbitrary ones rarely get past
the first check.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from hypothesis import strategies as st

from globesms.models.api import identifier_character_problem, text_character_problem

Json = Any

# ------------------------------------------------------------------------------------------------------ values

#: Valid mobile numbers in several countries (the shipped route table sends +86 templates to Huawei, other
#: templates to Tencent, text to Alibaba; +86 text has no route).
MOBILES = (
    "+85251234567",
    "+85261234567",
    "+6591234567",
    "+447911123456",
    "+8613800138000",
    "+8613912345678",
    "+12015550123",
    "+819012345678",
    "+61412345678",
    "+33612345678",
    "+491701234567",
    "+5511961234567",
)
#: Not sendable: no "+", too short, a landline, an unassigned country code, full-width digits, ...
NOT_MOBILES = (
    "85251234567",
    "12345",
    "+1",
    "+",
    "",
    " ",
    "+85221234567",
    "+4930123456",
    "+999123456789",
    "++85251234567",
    "+\uff18\uff15\uff12\uff15\uff11\uff12\uff13\uff14\uff15\uff16\uff17",  # full-width digits
    "+852 5123 4567 ext 9",
    "+85251234567\x00",
)
#: Strings that break naive code: lone surrogates (valid in JSON as escapes, not encodable as UTF-8), NUL,
#: bidi overrides, a BOM, astral characters, combining marks, very long text.
NASTY_STRINGS = (
    "\ud800",
    "a\udfffb",
    "\x00",
    "\u202egnp.exe",
    "\ufeff",
    "💬🇭🇰",
    "e\u0301\u0301\u0301",
    " ",
    "\n\t",
    "null",
    "NaN",
    "%00%ff",
    "a" * 2_000,
    "字" * 1_601,
)
BOUNDARY_INTS = (0, -1, 1, 59, 60, 259_200, 259_201, 2**31, 2**63, -(2**63), 10**30)

JSON_SCALARS: st.SearchStrategy[Json] = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from(BOUNDARY_INTS)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(NASTY_STRINGS)
)
#: Any JSON value, nested a few levels.
JSON_VALUES: st.SearchStrategy[Json] = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=24,
)
#: Text of any kind, the nasty strings included (hypothesis' own text never draws lone surrogates).
ANY_TEXT: st.SearchStrategy[str] = st.text(max_size=60) | st.sampled_from(NASTY_STRINGS)


@st.composite
def written_number(draw: st.DrawFn, number: str) -> str:
    """`number` as people write it: spaces, dashes, dots or brackets between digits, blanks around."""
    style = draw(st.sampled_from(["plain", "spaced", "dashed", "dotted", "bracketed", "padded"]))
    digits = number[1:]
    if style == "spaced":
        return "+" + " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))
    if style == "dashed":
        return "+" + digits[:3] + "-" + digits[3:]
    if style == "dotted":
        return "+" + digits[:3] + "." + digits[3:7] + "." + digits[7:]
    if style == "bracketed":
        return "+(" + digits[:3] + ") " + digits[3:]
    if style == "padded":
        return "  " + number + " "
    return number


MOBILE: st.SearchStrategy[str] = st.sampled_from(MOBILES).flatmap(written_number)
#: A recipient within the schema (at most 32 characters): a mobile number as people write it, mostly.
RECIPIENT: st.SearchStrategy[str] = st.one_of(
    MOBILE, MOBILE, MOBILE, st.sampled_from(NOT_MOBILES), st.text(max_size=32)
)

# ---------------------------------------------------------------------------------------------- API bodies


def _template() -> st.SearchStrategy[dict[str, Json]]:
    params = st.fixed_dictionaries(
        {},
        optional={
            # Within the schema: not empty once stripped (an empty value is a 422 since 2026-12-06).
            "code": st.sampled_from(["123456", "0", " 7 "])
            | st.text(max_size=40).filter(lambda value: value.strip() != "" and text_character_problem(value) is None),
            "minutes": st.integers(-5, 60),
        },
    )
    ids = st.sampled_from(
        [
            "example-otp",  # in the shipped registry
            "1234567",  # a Tencent id
            "8ff55eac1d0b478ab3c06c3c6a492300",  # a Huawei id
            "login-code",  # a logical-looking id the registry does not have: routed as Huawei's own id
            "99",
        ]
    )
    return st.fixed_dictionaries({"id": ids}, optional={"params": params})


def _some_text(max_size: int) -> st.SearchStrategy[str]:
    """Text within the documented rules: not blank (the API strips it first), no character refused in a text
    (docs/security.md: controls but tab/newline/CR, bidi overrides and isolates, U+FEFF); the legitimate invisible
    ones included. Refused characters are drawn by `with_hidden_characters`."""
    return st.text(min_size=1, max_size=max_size).filter(
        lambda text: bool(text.strip()) and text_character_problem(text) is None
    ) | st.sampled_from(["tab\tand\nnewline", "👩\u200d💻", "\u200fשלום", "💬🇭🇰"])  # noqa: RUF001


def _some_reference(max_size: int) -> st.SearchStrategy[str]:
    """A client_ref within the rules: printable characters and the space only."""
    return st.text(min_size=1, max_size=max_size).filter(
        lambda text: bool(text.strip()) and identifier_character_problem(text) is None
    )


#: Values each optional field may take, within the documented rules.
VALID_FIELDS: dict[str, st.SearchStrategy[Json]] = {
    "type": st.sampled_from(["OTP", "NOTIFY", "MKT"]),
    "sender_id": st.sampled_from(["Acme", "AcmeCorpLtd", "123456789012345", "A1"]),
    "provider": st.sampled_from(["aliyun", "tencent", "huawei"]),
    "validity_seconds": st.sampled_from([60, 600, 259_200]) | st.integers(60, 259_200),
    "client_ref": st.sampled_from(["order-42", "x" * 128]) | _some_reference(128),
    "status_callback": st.sampled_from(["https://hooks.example.com/sms", "https://hooks.example.com:8443/a?b=c#d"]),
    "status_callback_on_submitted": st.booleans(),
}
#: Values a client could plausibly get wrong: each breaks one documented rule of its field.
MISTAKES: dict[str, st.SearchStrategy[Json]] = {
    "to": st.sampled_from([[], "+852 5123 4567 8901 2345 6789 01234", ["+85251234567"] * 10_001]),
    "text": st.sampled_from(["", "   ", "x" * 1_601, "字" * 1_601, "lone \ud800 surrogate"]),
    "template": st.sampled_from(
        [{"id": "has space"}, {"id": ""}, {"id": "x" * 65}, {"id": "example-otp", "params": {"code": "x" * 501}}]
    ),
    "type": st.sampled_from(["otp", "SPAM", ""]),
    "sender_id": st.sampled_from(["Acme Corp", "AcmeCorpLtd1", "1234567890123456", "", "Acme!"]),
    "provider": st.sampled_from(["twilio", "Aliyun", ""]),
    "validity_seconds": st.sampled_from([59, 259_201, 0, -1, 600.5, 10**30]),
    "client_ref": st.sampled_from(["x" * 129, "", "\udfff"]),
    "status_callback": st.sampled_from(
        ["http://hooks.example.com/sms", "ftp://hooks.example.com/", "https://", "https:///p", "javascript:alert(1)"]
    ),
    "status_callback_on_submitted": st.sampled_from(["yes", 2, None]),
}


@st.composite
def message_spec(draw: st.DrawFn) -> dict[str, Json]:
    """A spec within the schema, as a client writes it. Its recipients may still be refused one by one (a
    landline, no "+", ...): that is an answer of its own (202 with `errors`), not a schema violation."""
    recipients = draw(st.lists(RECIPIENT, min_size=1, max_size=6))
    spec: dict[str, Json] = {"to": recipients[0] if len(recipients) == 1 and draw(st.booleans()) else recipients}
    if draw(st.booleans()):
        spec["text"] = draw(
            st.sampled_from(["Your code is 123456", "x" * 1_530, "字" * 670, "😀" * 330, "Ünïcödé ✓"]) | _some_text(200)
        )
    else:
        spec["template"] = draw(_template())
    for name, values in VALID_FIELDS.items():
        if draw(st.integers(0, 3)) == 0:
            spec[name] = draw(values)
    return spec


@st.composite
def send_body(draw: st.DrawFn) -> dict[str, Json]:
    """`POST /v1/messages`'s body within the schema: one spec, or `{"messages": [...]}`."""
    if draw(st.booleans()):
        return draw(message_spec())
    return {"messages": draw(st.lists(message_spec(), min_size=1, max_size=3))}


#: Two specs of 5,001 and 5,000 recipients: each within the schema, together over the 10,000 a request may have.
TOO_MANY_RECIPIENTS: list[dict[str, Json]] = [
    {"to": [f"+8525{i:07d}" for i in range(5_001)], "text": "x"},
    {"to": [f"+6591{i:06d}" for i in range(5_000)], "text": "y"},
]


# ------------------------------------------------------------------------- bodies at and past the read limits

#: Characters that are refused where they could deceive (text: controls but tab/newline/CR, bidi embeddings,
#: overrides and isolates, U+FEFF; names and client_ref: anything not printable), and characters that are legitimate
#: in a text and must pass (ZWJ, ZWNJ, LRM/RLM, ZWSP, tab, newline).
CONTROL_CHARACTERS = (
    *"\x00\x01\x07\x08\x0b\x0c\x1b\x1f\x7f\x80\x85\x9f",
    *"\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff",
    *"\t\n\r\u200b\u200c\u200d\u200e\u200f\u061c\u2028\u2029\u2060\u00ad",
)


@st.composite
def with_characters(draw: st.DrawFn, text: str) -> str:
    """`text` with a few control, invisible or bidi characters put anywhere in it."""
    chars = list(text)
    for _ in range(draw(st.integers(1, 3))):
        chars.insert(draw(st.integers(0, len(chars))), draw(st.sampled_from(CONTROL_CHARACTERS)))
    return "".join(chars)


#: Texts at the 10-part limit and one past it, in each encoding (GSM-7, its two-septet extension, UCS-2, astral
#: characters of two UTF-16 units; a part never splits the last two: 76 and 33 a part), and far past it.
LONG_TEXTS = (
    "x" * 1_530,
    "x" * 1_531,
    "{" * 760,
    "{" * 761,
    "字" * 670,
    "字" * 671,
    "😀" * 330,
    "😀" * 331,
    "😀" * 1_600,
    "👩\u200d💻" * 200,
    "x" * 1_600,
    "x" * 100_000,
)


@st.composite
def nested(draw: st.DrawFn) -> str:
    """JSON nested past the 32 levels read: around the limit, past the parser's own recursion limit, and far past
    it; bare, or as the value of a field of an otherwise good body."""
    depth = draw(st.sampled_from([50_000, 33, 1_001, 32, 5_000, 31, 999, 100]))
    opening, closing = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    inner = opening * depth + ("1" if opening == '{"a":' else "") + closing * depth
    if draw(st.booleans()):
        return inner
    field = draw(st.sampled_from(["to", "text", "template", "client_ref", "messages", "extra"]))
    return '{"to": "+85251234567", "text": "x", "' + field + '": ' + inner + "}"


@st.composite
def huge_number(draw: st.DrawFn) -> str:
    """Integers of 20, 21, 4,300 and more digits (Python refuses to convert past 4,300), and floats past a double's
    range, bare or as a field's value."""
    digits = draw(st.sampled_from([5_000, 21, 4_301, 20, 100_000, 4_300]))
    number = draw(st.sampled_from(["", "-"])) + "9" * digits
    number = draw(st.sampled_from([number, number, "1e400", "-1e400", "1" + "0" * 400 + ".5"]))
    if draw(st.booleans()):
        return number
    field = draw(st.sampled_from(["validity_seconds", "to", "text", "type", "status_callback_on_submitted"]))
    if draw(st.booleans()):
        return '{"to": "+85251234567", "template": {"id": "example-otp", "params": {"code": ' + number + "}}}"
    return '{"to": "+85251234567", "text": "x", "' + field + '": ' + number + "}"


@st.composite
def with_hidden_characters(draw: st.DrawFn, body: dict[str, Json]) -> dict[str, Json]:
    """`body` with control, invisible or bidi characters in a text, a client_ref, a template parameter's name or
    value, or a number; or a text at or past the 10-part limit."""
    spec = draw(st.sampled_from(body["messages"])) if "messages" in body else body
    where = draw(st.sampled_from(["text", "client_ref", "param name", "param value", "to", "long text"]))
    if where == "long text":
        spec.pop("template", None)
        spec["text"] = draw(st.sampled_from(LONG_TEXTS))
    elif where == "text":
        spec.pop("template", None)
        spec["text"] = draw(with_characters(draw(st.sampled_from(["Your code is 123456", "字字", "😀 ok"]))))
    elif where == "client_ref":
        spec["client_ref"] = draw(with_characters("order-42"))
    elif where == "to":
        spec["to"] = [draw(with_characters("+85251234567")), "+6591234567"]
    else:
        spec.pop("text", None)
        name, value = ("code", "123456")
        if where == "param name":
            name = draw(with_characters(name))
        else:
            value = draw(with_characters(value))
        spec["template"] = {"id": "example-otp", "params": {name: value}}
    return body


@st.composite
def with_mistake(draw: st.DrawFn, body: dict[str, Json]) -> dict[str, Json]:
    """`body` with one field of one spec set to a value that breaks its rule."""
    name = draw(st.sampled_from(sorted(MISTAKES)))
    spec = draw(st.sampled_from(body["messages"])) if "messages" in body else body
    spec[name] = draw(MISTAKES[name])
    if name == "template":
        spec.pop("text", None)
    return body


# --------------------------------------------------------------------------------------------------- mutations


def _paths(value: Json, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every position in a JSON value, the root included."""
    found = [path]
    if isinstance(value, dict):
        for key, child in value.items():
            found.extend(_paths(child, (*path, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.extend(_paths(child, (*path, index)))
    return found


def _get(value: Json, path: tuple[Any, ...]) -> Json:
    for part in path:
        value = value[part]
    return value


def _set(value: Json, path: tuple[Any, ...], new: Json) -> Json:
    if not path:
        return new
    _get(value, path[:-1])[path[-1]] = new
    return value


REPLACEMENTS: st.SearchStrategy[Json] = st.one_of(
    JSON_SCALARS, JSON_VALUES, st.sampled_from([[], {}, "", None, True, 1.5, -0.0, [None], {"": None}])
)


@st.composite
def mutated(draw: st.DrawFn, value: Json, max_mutations: int = 3) -> Json:
    """`value` (a JSON value) after 1..max_mutations edits at positions anywhere in it: a value replaced, a key
    dropped or added, a list item repeated or dropped, a value wrapped in a list or turned into a string."""
    value = json.loads(json.dumps(value))  # a copy that may be edited in place
    for _ in range(draw(st.integers(1, max_mutations))):
        path = draw(st.sampled_from(_paths(value)))
        target = _get(value, path)
        operations = ["replace", "wrap", "stringify"]
        if isinstance(target, dict):
            operations += ["add_key"] + (["drop_key"] if target else [])
        if isinstance(target, list) and target:
            operations += ["repeat_item", "drop_item"]
        operation = draw(st.sampled_from(operations))
        if operation == "replace":
            value = _set(value, path, draw(REPLACEMENTS))
        elif operation == "wrap":
            value = _set(value, path, [target])
        elif operation == "stringify":
            value = _set(value, path, json.dumps(target))
        elif operation == "add_key":
            target[draw(st.sampled_from(["extra", "", "to", "messages", "batch_id"]) | ANY_TEXT)] = draw(REPLACEMENTS)
        elif operation == "drop_key":
            del target[draw(st.sampled_from(sorted(target)))]
        elif operation == "repeat_item":
            target.append(json.loads(json.dumps(draw(st.sampled_from(target)))))
        else:
            del target[draw(st.integers(0, len(target) - 1))]
    return value


# ------------------------------------------------------------------------------------------------ serializing


@st.composite
def json_text(draw: st.DrawFn, value: Json) -> str:
    """`value` as a client could write it: compact or spaced, ASCII-escaped or not; sometimes with a repeated key,
    trailing garbage, or cut short."""
    text = json.dumps(value, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 2])))
    if not _encodable(text):
        # A lone surrogate travels only as a \u escape: no client can send it as UTF-8.
        text = json.dumps(value, indent=2)
    damage = draw(st.sampled_from(["none"] * 6 + ["truncate", "trail", "repeat_key", "nan"]))
    if damage == "truncate" and text:
        return text[: draw(st.integers(0, len(text) - 1))]
    if damage == "trail":
        return text + draw(st.sampled_from([" ", "}", ",", "\x00", " {}", "garbage"]))
    if damage == "repeat_key" and text.startswith("{") and len(text) > 2:
        return '{"to": "+85251234567", ' + text[1:]
    if damage == "nan":
        return text.replace("1", "NaN", 1) if "1" in text else text + "NaN"
    return text


def _utf8(text: str) -> bytes:
    return text.encode("utf-8")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


#: What a client may POST: a valid body, one with a plausible mistake, a mutated one, any JSON, any text or bytes.
API_BODY: st.SearchStrategy[str | bytes] = st.one_of(
    send_body().flatmap(json_text),
    send_body().flatmap(json_text),
    send_body().flatmap(json_text),
    send_body().flatmap(with_mistake).flatmap(json_text),
    st.builds(lambda: {"messages": TOO_MANY_RECIPIENTS}).flatmap(json_text),
    send_body().flatmap(mutated).flatmap(json_text),
    send_body().flatmap(mutated).flatmap(json_text),
    send_body().flatmap(with_hidden_characters).flatmap(json_text),
    send_body().flatmap(with_hidden_characters).flatmap(json_text),
    nested(),
    huge_number(),
    JSON_VALUES.flatmap(json_text),
    st.text(max_size=200),
    st.binary(max_size=200),
)

IDEMPOTENCY_KEYS: st.SearchStrategy[str] = st.one_of(
    st.uuids().map(str),
    st.sampled_from(["k", "a b", "x" * 128, "x" * 129, " key", "key ", "", "ключ", "\x7f", "a\tb", "\ud800"]),
    st.text(max_size=130),
)

# ----------------------------------------------------------------------------------------------- SQS intake

BATCH_IDS: st.SearchStrategy[Json] = st.one_of(
    st.sampled_from(["order-42", "order-43", "B_1", "x" * 64]),  # a small pool, so records of one event collide
    st.sampled_from(["x" * 65, "has space", "", "../etc", "a.b", "ünï"]),
    JSON_SCALARS,
)


@st.composite
def intake_body(draw: st.DrawFn) -> str:
    """An SQS intake body: a send body with, sometimes, `batch_id` and `idempotency_key`; near-valid, arbitrary
    JSON, or any text."""
    kinds = ["valid", "valid", "mistake", "too many", "mutated", "mutated", "json", "text"]
    kind = draw(st.sampled_from([*kinds, "hidden characters", "nested", "huge number"]))
    if kind == "text":
        return draw(st.text(max_size=200))
    if kind == "nested":
        return draw(nested())
    if kind == "huge number":
        return draw(huge_number())
    if kind == "json":
        return draw(JSON_VALUES.flatmap(json_text))
    body = draw(send_body())
    if draw(st.booleans()):
        body["batch_id"] = draw(BATCH_IDS)
    if draw(st.integers(0, 3)) == 0:
        body["idempotency_key"] = draw(IDEMPOTENCY_KEYS)
    if kind == "mutated":
        body = draw(mutated(body))
    elif kind == "too many":
        body = {
            **{k: v for k, v in body.items() if k in ("batch_id", "idempotency_key")},
            "messages": TOO_MANY_RECIPIENTS,
        }
    elif kind == "mistake":
        body = draw(with_mistake(body))
    elif kind == "hidden characters":
        body = draw(with_hidden_characters(body))
    return draw(json_text(body))


@st.composite
def intake_bodies(draw: st.DrawFn) -> list[str]:
    """The bodies of one SQS event (at most 4): independent ones, and sometimes two that share a batch id or an
    idempotency key, with the same content (a repeat) or not (a conflict)."""
    bodies = draw(st.lists(intake_body(), min_size=1, max_size=2))
    if draw(st.booleans()):
        first = draw(send_body())
        second = first if draw(st.booleans()) else draw(send_body())
        shared = draw(
            st.sampled_from([{"batch_id": "order-42"}, {"idempotency_key": "k-1"}])
            | st.just({"batch_id": "order-42", "idempotency_key": "k-1"})
        )
        pair = [json.dumps({**first, **shared}), json.dumps({**second, **shared})]
        bodies[draw(st.integers(0, len(bodies))) : 0] = pair
    return bodies


# --------------------------------------------------------------------------------------------------- receipts


@st.composite
def mutated_reports(draw: st.DrawFn, reports: list[dict[str, Json]]) -> list[Json]:
    """Some reports left as they are, some mutated, sometimes a foreign item among them."""
    items: list[Json] = [draw(mutated(r)) if draw(st.integers(0, 2)) == 0 else r for r in reports]
    if draw(st.integers(0, 4)) == 0:
        items.insert(draw(st.integers(0, len(items))), draw(JSON_VALUES))
    return items


@st.composite
def aliyun_report(draw: st.DrawFn, message_ids: list[str], provider_ids: list[str]) -> dict[str, Json]:
    """One report of Alibaba's global push (`local/emulators/aliyun.py` builds the same)."""
    status, code, description = draw(
        st.sampled_from(
            [
                ("1", "DELIVERED", "success"),
                ("2", "UNDELIV", "The message could not be delivered to the handset."),
                ("6", "EXPIRED", "The message expired before it could be delivered."),
                ("9", "UNKNOWN", ""),
            ]
        )
    )
    report: dict[str, Json] = {
        "To": draw(st.sampled_from(MOBILES)).lstrip("+"),
        "Status": status,
        "MessageId": draw(st.sampled_from(provider_ids) | st.text(min_size=1, max_size=20)),
        "SmsSize": draw(st.sampled_from(["1", "2", 1])),
        "SendDate": "Thu, 26 Nov 2026 18:00:00 +0800",
        "ReceiveDate": draw(st.sampled_from(["Thu, 26 Nov 2026 18:00:02 +0800", "Thu, 26 Nov 2026 18:00:05 +0800"])),
        "ErrorCode": code,
        "ErrorDescription": description,
    }
    echo = draw(
        st.sampled_from(message_ids)
        | st.builds(lambda m, n: f"{m}+{n}", st.sampled_from(message_ids), st.integers(0, 1001))
    )
    if draw(st.booleans()):
        report["TaskId"] = echo
    return report


@st.composite
def tencent_report(draw: st.DrawFn, message_ids: list[str], provider_ids: list[str]) -> dict[str, Json]:
    """One report of Tencent's status push (`local/emulators/tencent.py` builds the same)."""
    report_status, errmsg, description = draw(
        st.sampled_from(
            [
                ("SUCCESS", "DELIVRD", "user received"),
                ("FAIL", "UNDELIV", "The SMS message could not be delivered"),
                ("FAIL", "EXPIRED", "The SMS message expired before it could be delivered"),
                ("FAIL", "REJECTD", "rejected"),
                ("PENDING", "", ""),
            ]
        )
    )
    report: dict[str, Json] = {
        "user_receive_time": draw(st.sampled_from(["2026-11-26 18:00:02", "2026-11-26 18:00:09"])),
        "nationcode": "852",
        "mobile": draw(st.sampled_from(["51234567", "85251234567", "+85251234567", "13800138000"])),
        "report_status": report_status,
        "errmsg": errmsg,
        "description": description,
        "sid": draw(st.sampled_from(provider_ids) | st.text(min_size=1, max_size=20)),
    }
    if draw(st.booleans()):
        report["ext"] = draw(st.sampled_from(message_ids))
    return report


@st.composite
def huawei_report(draw: st.DrawFn, message_ids: list[str], provider_ids: list[str]) -> dict[str, Json]:
    """One Huawei status report (`local/emulators/huawei.py` builds the same), all values strings as in a form."""
    status = draw(st.sampled_from(["DELIVRD", "UNDELIV", "EXPIRED", "REJECTD", "DELETED", "ACCEPTD", "E200028", "X"]))
    total = draw(st.integers(1, 3))
    report: dict[str, Json] = {
        "smsMsgId": draw(st.sampled_from(provider_ids) | st.text(min_size=1, max_size=20)),
        "total": str(total),
        "sequence": str(draw(st.integers(1, total))),
        "status": status,
        "statusDesc": "The user has received the SMS.",
        "source": "2",
        "updateTime": draw(st.sampled_from(["2026-11-26T10:00:02Z", "2026-11-26T10:00:07Z"])),
        "orgCode": draw(st.sampled_from(["000", status])),
    }
    if draw(st.booleans()):
        report["extend"] = draw(st.sampled_from(message_ids))
        report["to"] = draw(st.sampled_from(MOBILES))
    return report


ReportStrategy = Callable[[list[str], list[str]], st.SearchStrategy[dict[str, Json]]]


@st.composite
def json_array_push(draw: st.DrawFn, report: ReportStrategy, message_ids: list[str], provider_ids: list[str]) -> bytes:
    """Alibaba's and Tencent's push: a JSON array of reports (real, mutated, or anything at all)."""
    kind = draw(st.sampled_from(["real", "mutated", "mutated", "json", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return _utf8(draw(JSON_VALUES.flatmap(json_text)))
    reports = draw(st.lists(report(message_ids, provider_ids), min_size=1, max_size=4))
    items = draw(mutated_reports(reports)) if kind == "mutated" else reports
    return _utf8(draw(json_text(items)))


@st.composite
def huawei_push(draw: st.DrawFn, message_ids: list[str], provider_ids: list[str]) -> tuple[bytes, str]:
    """Huawei's push and its content type: one form-encoded report, or `{"statusReportList": [...]}`; real,
    mutated (a field repeated or missing, a value that is not text), or anything at all."""
    content_type = draw(
        st.sampled_from(
            [
                "application/x-www-form-urlencoded",
                "application/x-www-form-urlencoded; charset=UTF-8",
                "application/json",
                "",
                "text/plain",
            ]
        )
    )
    kind = draw(st.sampled_from(["form", "form_mutated", "batch", "batch_mutated", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200)), content_type
    if kind.startswith("form"):
        fields = list(draw(huawei_report(message_ids, provider_ids)).items())
        if kind == "form_mutated":
            fields = draw(_mutated_form(fields))
        return urlencode(fields, encoding="utf-8", errors="surrogatepass").encode(), content_type
    reports = draw(st.lists(huawei_report(message_ids, provider_ids), min_size=1, max_size=4))
    items: Json = draw(mutated_reports(reports)) if kind == "batch_mutated" else reports
    payload: Json = {"statusReportList": items}
    if kind == "batch_mutated" and draw(st.booleans()):
        payload = draw(mutated(payload))
    return _utf8(draw(json_text(payload))), content_type


@st.composite
def _mutated_form(draw: st.DrawFn, fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
    fields = list(fields)
    for _ in range(draw(st.integers(1, 3))):
        operation = draw(st.sampled_from(["drop", "repeat", "replace", "add"]))
        index = draw(st.integers(0, len(fields) - 1)) if fields else 0
        if operation == "drop" and fields:
            del fields[index]
        elif operation == "repeat" and fields:
            fields.append((fields[index][0], draw(ANY_TEXT)))
        elif operation == "replace" and fields:
            fields[index] = (fields[index][0], draw(ANY_TEXT | st.sampled_from(["0", "-1", "999", "1000", "2"])))
        else:
            fields.append((draw(ANY_TEXT), draw(ANY_TEXT)))
    return fields


def receipt_push(
    provider: str, message_ids: list[str], provider_ids: list[str]
) -> st.SearchStrategy[tuple[bytes, str]]:
    """A push body in `provider`'s own format and the content type it comes with. `message_ids` and `provider_ids`
    are the ids reports may name (of messages that exist, or not), so that some reports find their message."""
    if provider == "huawei":
        return huawei_push(message_ids, provider_ids)
    report: ReportStrategy = aliyun_report if provider == "aliyun" else tencent_report
    content_type = st.sampled_from(["application/json", "application/json;charset=utf-8", "text/plain", ""])
    return st.tuples(json_array_push(report, message_ids, provider_ids), content_type)
