"""Recipients for `globesms send`: from the command line or a CSV file, cut into request bodies the API accepts.

A CSV file has a header row: a column `to` (or `number`) and one column per template parameter. It is read twice,
row by row, and never held whole: `scan_csv` checks every row and counts them before anything is sent (a file
that breaks half-way must not leave half a campaign sent), `read_csv` then yields the rows for sending.

Each chunk (at most the API's per-request cap) becomes one `POST /v1/messages` body: the shared content (`--text`
or `--template`, `--type`, …) with `to` listing the chunk's numbers; rows whose template parameters differ become
separate specs of one `{"messages": […]}` body (consecutive rows with the same parameters share a spec), so the API's
`index` of a recipient is its position in the chunk, which is how each answer is traced back to its CSV line.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby, islice
from pathlib import Path
from typing import Any

from globesms.models.limits import MAX_BODY_BYTES

NUMBER_COLUMNS = ("to", "number")
ENCODING = "utf-8-sig"  # spreadsheets often start a UTF-8 CSV with a byte-order mark


class RecipientsProblem(ValueError):
    """The recipients cannot be sent as given (a usage error); the message names the line or column and the rule."""


@dataclass(frozen=True)
class Recipient:
    number: str
    params: dict[str, str]
    line: int | None = None  # the CSV line (1 is the header); None for numbers given on the command line


@dataclass(frozen=True)
class CsvLayout:
    number_column: int
    param_columns: dict[str, int]  # parameter name -> column position
    rows: int


def _layout_of(header: list[str]) -> tuple[int, dict[str, int]]:
    names = [name.strip() for name in header]
    if any(not name for name in names):
        raise RecipientsProblem("line 1: every column of the header needs a name")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise RecipientsProblem(f"line 1: column {repeated[0]!r} appears twice")
    numbers = [i for i, name in enumerate(names) if name.lower() in NUMBER_COLUMNS]
    if len(numbers) != 1:
        found = "both" if numbers else "neither"
        raise RecipientsProblem(f"line 1: the header needs exactly one of the columns 'to' or 'number' ({found} found)")
    params = {name: i for i, name in enumerate(names) if i != numbers[0]}
    return numbers[0], params


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank row after the header."""
    with path.open(newline="", encoding=ENCODING) as handle:
        # Strict: a quote left open would otherwise run to the end of the file, the rows after it sent as one
        # field's text to the row it opened in; strict, it is a csv.Error, told with its line.
        reader = csv.reader(handle, strict=True)
        try:
            for fields in reader:
                if reader.line_num == 1 or not any(field.strip() for field in fields):
                    continue
                yield reader.line_num, fields
        except csv.Error as exc:
            raise RecipientsProblem(f"line {reader.line_num}: not valid CSV ({exc})") from exc


def scan_csv(path: Path) -> CsvLayout:
    """Check the header and every row; count the rows. Reads one row at a time."""
    try:
        with path.open(newline="", encoding=ENCODING) as handle:
            header = next(csv.reader(handle, strict=True), None)
        if header is None:
            raise RecipientsProblem("the file is empty: it needs a header row with a column 'to'")
        number_column, params = _layout_of(header)
        rows = 0
        for line, fields in _rows(path):
            if len(fields) != len(header):
                raise RecipientsProblem(f"line {line}: {len(fields)} fields, but the header has {len(header)}")
            if not fields[number_column].strip():
                raise RecipientsProblem(f"line {line}: no number in column {header[number_column].strip()!r}")
            rows += 1
    except UnicodeDecodeError as exc:
        raise RecipientsProblem(f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except csv.Error as exc:
        raise RecipientsProblem(f"the file is not valid CSV: {exc}") from exc
    if rows == 0:
        raise RecipientsProblem("the file has a header but no recipients")
    return CsvLayout(number_column=number_column, param_columns=params, rows=rows)


def read_csv(path: Path, layout: CsvLayout) -> Iterator[Recipient]:
    for line, fields in _rows(path):
        params = {name: fields[i] for name, i in layout.param_columns.items()}
        yield Recipient(number=fields[layout.number_column].strip(), params=params, line=line)


def chunks(
    recipients: Iterable[Recipient], size: int, content: dict[str, Any]
) -> Iterator[tuple[str, list[Recipient]]]:
    """The recipients in requests of at most `size`, each with its position in the file ("3": the fourth `size`
    rows; "3.0" and "3.1" its halves), whose bodies (`request_body` with `content`) fit the API's MAX_BODY_BYTES: a
    request over it is halved until it does. Rows with parameters of their own each repeat the message's content,
    so 10,000 of them could make a body the API refuses (413) on every run (a review). The position goes into the
    request's key (`chunk_idempotency_key`): a request that fits keeps the key it had, and one split (or no longer
    split) after an edit moves no other request's key, which a count of the requests sent would (a review)."""
    iterator = iter(recipients)
    position = 0
    while chunk := list(islice(iterator, size)):
        yield from _fitting(str(position), chunk, content)
        position += 1


#: Room left under the API's limit: the body measured as JSON with its default separators and ASCII escapes, at
#: least as long as what the client sends.
_BODY_MARGIN = 1024


def _fitting(position: str, chunk: list[Recipient], content: dict[str, Any]) -> Iterator[tuple[str, list[Recipient]]]:
    size = len(json.dumps(request_body(content, chunk)).encode())
    if size <= MAX_BODY_BYTES - _BODY_MARGIN or len(chunk) == 1:
        yield position, chunk
        return
    half = len(chunk) // 2
    yield from _fitting(f"{position}.0", chunk[:half], content)
    yield from _fitting(f"{position}.1", chunk[half:], content)


def request_body(content: dict[str, Any], chunk: list[Recipient]) -> dict[str, Any]:
    """The POST /v1/messages body of one chunk; `content` is a spec without `to` (and the template's shared params).

    Recipients keep their order, so the API's `index` of each is its position in `chunk`."""
    specs: list[dict[str, Any]] = []
    for params, group in groupby(chunk, key=lambda r: r.params):
        spec = {"to": [r.number for r in group], **content}
        if params:  # per-row parameters join the shared ones (send refuses a name given both ways)
            template = content["template"]
            spec["template"] = {**template, "params": {**template.get("params", {}), **params}}
        specs.append(spec)
    return specs[0] if len(specs) == 1 else {"messages": specs}


def chunk_idempotency_key(body: dict[str, Any], chunk_index: int | str, salt: str) -> str:
    """A key derived from what the chunk sends (its numbers, parameters and content, so from the file's content)
    and its position: running the same send again gives every chunk the key it had, and the API answers a key it
    has seen with its first answer instead of sending again. `salt` (--idempotency-key) makes a deliberate
    repeat a new send."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(f"{salt}\n{chunk_index}\n{canonical}".encode()).hexdigest()
    return f"globesms-cli-{digest[:48]}-{chunk_index}"
