"""Checking a whole call's numbers at once, for the clients' batch fast paths (pure; no I/O).

A batch carries up to 1,000 numbers, and checking each with its own regex match was most of building a call. Here
the numbers are joined, one after each line break, and checked with a few C-speed string operations over the
joined text. Each client's per-message rule stays the reference: its tests hold the two equal.
"""

from __future__ import annotations

from collections.abc import Sequence


def joined_numbers(numbers: Sequence[str]) -> str:
    """The numbers, each after a line break: `"\\n+6591...\\n+85251..."`. A prefix check of every number is then a
    substring search, e.g. `"\\n+86" in joined` (valid only once `all_plus_digits` holds)."""
    return "\n" + "\n".join(numbers)


def all_plus_digits(numbers: Sequence[str], joined: str, shortest: int, longest: int) -> bool:
    """Whether every number is "+" followed by ASCII digits only, `shortest` to `longest` characters with the "+".

    `joined` is `joined_numbers(numbers)`. When it holds "\\n+" exactly once per number and nothing but digits is
    left once those are removed, every line break is one of ours and followed by "+", so every number is one "+"
    and digits."""
    if not numbers:
        return True
    if joined.count("\n+") != len(numbers):
        return False
    digits = joined.replace("\n+", "")
    if not (digits.isascii() and digits.encode().isdigit()):  # bytes.isdigit: [0-9] at C speed, str's is slower
        return False
    return lengths_within(numbers, shortest, longest)


def lengths_within(values: Sequence[str], shortest: int, longest: int) -> bool:
    """Whether every value is `shortest` to `longest` (at most 255) characters long.

    The lengths are made bytes and the allowed ones deleted from them at C speed: `min()` and `max()` over a list
    of 1,000 ints compare Python objects one by one and took longer than the rest of a batch's number check."""
    if longest > 255:
        raise ValueError("lengths_within checks lengths up to 255")
    try:
        lengths = bytes([len(value) for value in values])
    except ValueError:  # a length past 255: too long
        return False
    return not lengths.translate(None, bytes(range(shortest, longest + 1)))
