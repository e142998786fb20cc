"""Reading a send request's body as JSON, within limits both entrances share (the API and the SQS intake).

`json.loads` alone lets three kinds of body escape as crashes instead of refusals: nesting deeper than Python's
recursion limit (RecursionError), integers of more than 4,300 digits (a ValueError that is not a JSONDecodeError),
and, short of those, documents large or deep enough to cost a function its memory and time before the schema
refuses them. Every one is refused here, before the schema sees the body, as MALFORMED_JSON or BODY_TOO_LARGE; so
is an object that gives a key twice, which `json.loads` reads as its last value.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic_core import to_json

from globesms.models.limits import MAX_BODY_BYTES

#: The deepest nesting read. A valid body nests 5 levels ({"messages": [{"template": {"params": {…}}}]}), so this
#: refuses nothing valid, and stays far below the recursion limit anything walking a parsed body could reach.
MAX_JSON_DEPTH = 32
#: The most characters of a repeated key a refusal names: a key is the client's text, of any length.
MAX_NAMED_KEY_CHARS = 200
#: The longest integer read, in digits: every integer field is far smaller (validity_seconds <= 259,200); a
#: template parameter given as a number is sent as its digits, and no template needs more than 64-bit's 20.
MAX_INTEGER_DIGITS = 20


class MalformedJson(ValueError):
    """The body is not JSON globesms reads; the message says which rule it breaks."""


class BodyTooLarge(ValueError):
    def __init__(self, size: int) -> None:
        super().__init__(f"the body is {size:,} bytes; at most {MAX_BODY_BYTES:,} bytes per request")
        self.size = size


def utf8_size(text: str) -> int:
    """The body's size in bytes as it was sent (UTF-8), without encoding a body that is plainly small or large."""
    if len(text) > MAX_BODY_BYTES or len(text) * 4 <= MAX_BODY_BYTES:
        return len(text)  # a lower bound, enough to decide either way
    return len(text.encode("utf-8", "surrogatepass"))


def check_size(size: int) -> None:
    if size > MAX_BODY_BYTES:
        raise BodyTooLarge(size)


def _integer(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise MalformedJson(f"the body is not JSON globesms reads: an integer of more than {MAX_INTEGER_DIGITS} digits")
    return int(digits)


def read_json(text: str | bytes) -> Any:
    """The parsed body, or MalformedJson / BodyTooLarge naming the rule it breaks."""
    if isinstance(text, bytes):
        check_size(len(text))
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedJson("the body is not valid JSON: it is not UTF-8 text") from None
    check_size(utf8_size(text))
    try:
        data = json.loads(text, parse_int=_integer, object_pairs_hook=_one_value_each)
    except json.JSONDecodeError as exc:
        raise MalformedJson(f"the body is not valid JSON ({exc.msg} at character {exc.pos})") from None
    except RecursionError:  # deeper than the parser itself reaches
        raise MalformedJson(_TOO_DEEP) from None
    if _deeper_than(data, MAX_JSON_DEPTH):
        raise MalformedJson(_TOO_DEEP)
    return data


def write_json(data: Any) -> str:
    """An answer's JSON, written by pydantic-core (Rust) rather than `json.dumps`, Powertools' default: a
    10,000-recipient answer is some 2 MB of JSON, a few percent of its accept's CPU that way. Compact, as the
    default writes it; characters outside ASCII are written as UTF-8 rather than escaped (the same JSON)."""
    return to_json(data).decode()


def _one_value_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are each given once (the hook the reply readers refuse a repeated field with): with one
    given twice, `json.loads` keeps the last value, and `{"to": "<a number>", …, "to": "<another>"}` was sent to the
    other number, while a reader of the body (a log, a proxy, the client's own check) saw the first."""
    data = dict(pairs)
    if len(data) == len(pairs):
        return data
    seen: set[str] = set()
    for key, _value in pairs:
        if key in seen:
            named = key if len(key) <= MAX_NAMED_KEY_CHARS else key[: MAX_NAMED_KEY_CHARS - 1] + "…"
            raise MalformedJson(f"the body is not JSON globesms reads: the key {json.dumps(named)} is given twice")
        seen.add(key)
    return data  # not reached: a dict shorter than its pairs has a repeated key


_TOO_DEEP = f"the body is not JSON globesms reads: nested deeper than {MAX_JSON_DEPTH} levels"


def _deeper_than(data: Any, limit: int) -> bool:
    # Iterative, so that a deep document cannot make the check itself recurse.
    pending: list[tuple[Any, int]] = [(data, 1)] if isinstance(data, dict | list) else []
    while pending:
        value, depth = pending.pop()
        if depth > limit:
            return True
        children = value.values() if isinstance(value, dict) else value
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
