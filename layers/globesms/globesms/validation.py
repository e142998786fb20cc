"""The one way a pydantic validation error is put into words: `field.path: rule`, never the input.

Every boundary (API bodies, SQS bodies, provider answers, receipts, settings and data files) reports a refusal with
these paths, so a field is named the same way wherever it was refused. Pydantic's own messages never quote the input
when asked with `include_input=False`, which keeps numbers and texts out of the reasons (and so out of logs).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

from pydantic import ValidationError

# Parts of a pydantic error location that are not fields of the client's document: where the document is (Powertools'
# "body") and which branch of the request's union it was read as, both leading the location; the union member a value
# was tried as, last ("template.params.code" tried as "int"). Only there: a client's own key may be spelled the same
# ({"batch": 1} was reported as "body", a review).
_LOCATION = "body"
_BRANCHES = frozenset({"single", "batch"})
_MEMBERS = frozenset({"str", "int", "float", "bool"})
_TYPE_TAG = re.compile(r"^[a-z-]+\[.*\]$|^constrained-")
_KEY_MARKER = "[key]"  # pydantic's marker for a dict key that is itself invalid
# Errors whose location ends with the client's key itself, never with a union member.
_ABOUT_A_KEY = frozenset({"extra_forbidden", "missing"})


def field_path(location: Sequence[Any], *, default: str = "body", ends_with_a_key: bool = False) -> str:
    """`messages.0.to` for ("body", "messages", 0, "to"); `rates[key]` for a bad key of `rates`. `ends_with_a_key`:
    the last part is the client's key (an extra or missing field), whatever it is spelled like."""
    parts = [str(p) for p in location]
    start = 1 if parts[:1] == [_LOCATION] else 0
    start += 1 if parts[start : start + 1] and parts[start] in _BRANCHES else 0
    last = len(parts) - 1
    path = ""
    for i in range(start, len(parts)):
        part = parts[i]
        # The client's key, last in an error about a key, is kept whatever it is spelled like ("int", "list[a]").
        if not (i == last and ends_with_a_key) and ((i == last and part in _MEMBERS) or _is_type_tag(part)):
            continue
        if part == _KEY_MARKER:
            path += part
        else:
            path = f"{path}.{part}" if path else part
    return path or default


def _is_type_tag(part: str) -> bool:
    # The regular expression only where it can match: a body of 200,000 bad numbers has a million parts to look at.
    return (part.endswith("]") or part.startswith("constrained-")) and _TYPE_TAG.match(part) is not None


def error_list(errors: ValidationError | Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    if isinstance(errors, ValidationError):
        return list(errors.errors(include_input=False, include_url=False, include_context=False))
    return list(errors)


def _pairs(errors: ValidationError | Iterable[Mapping[str, Any]], default: str) -> Iterator[tuple[str, str]]:
    for error in error_list(errors):
        rule = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        location = error.get("loc", ())
        yield field_path(location, default=default, ends_with_a_key=error.get("type") in _ABOUT_A_KEY), rule


def problems(errors: ValidationError | Iterable[Mapping[str, Any]], *, default: str = "body") -> list[tuple[str, str]]:
    """(field path, rule) for every broken rule, in order, each pair once."""
    return list(dict.fromkeys(_pairs(errors, default)))


def first_problems(
    errors: ValidationError | Iterable[Mapping[str, Any]], most: int, *, default: str = "body"
) -> tuple[list[tuple[str, str]], int]:
    """The first `most` pairs of `problems`, and how many there are in all: a refusal lists a bounded number, and
    only the pairs it lists are turned into anything larger than the pair itself."""
    seen = dict.fromkeys(_pairs(errors, default))
    return list(islice(seen, most)), len(seen)


def describe(errors: ValidationError | Iterable[Mapping[str, Any]], *, default: str = "body", most: int = 0) -> str:
    """`path: rule; path: rule` (the first `most` only, when given); a rule of the whole document (no path, and
    `default=""`) stands alone."""
    found = problems(errors, default=default)
    return "; ".join(f"{path}: {rule}" if path else rule for path, rule in (found[:most] if most else found))


def fields(errors: ValidationError | Iterable[Mapping[str, Any]], *, default: str = "body") -> list[str]:
    """The broken fields' paths, sorted, each once."""
    return sorted({path for path, _ in problems(errors, default=default)})
