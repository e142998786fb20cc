"""How messages and batch headers are keyed and written as DynamoDB items (pure: no client).

Keys: a batch is one partition `B#<batch_id>`; its header is sort key `#`, its status counts `#counts`, its messages
`M#<seq>` (so messages sort by id and a page is one Query). Submitted messages carry
`provider_ref = <provider>#<provider message id>`, the key of the sparse, keys-only `ProviderRef` index that receipts
use to find a message.
"""

from __future__ import annotations

import zlib
from functools import cache
from typing import TYPE_CHECKING, Any

from globesms.models.records import UNSETTLED_STATES, BatchRecord, MessageRecord, split_message_id
from globesms.models.records import message_id as id_of_message

if TYPE_CHECKING:
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

HEADER_SK = "#"
COUNTS_SK = "#counts"  # the batch's status counts (aws.dynamodb_counts), kept apart from the header accept rewrites


@cache
def serializer() -> TypeSerializer:
    # boto3 imported on first use, not with this module: a handler imports its adapters at cold start and
    # loading boto3 is most of that (clients.py defers it the same way).
    from boto3.dynamodb.types import TypeSerializer

    return TypeSerializer()


@cache
def deserializer() -> TypeDeserializer:
    from boto3.dynamodb.types import TypeDeserializer

    return TypeDeserializer()


def batch_pk(batch_id: str) -> str:
    return f"B#{batch_id}"


def message_sk(seq: int) -> str:
    return f"M#{seq:05d}"


def message_id_of_keys(item: dict[str, Any]) -> str:
    """Our message id from a message item's table keys (an index's keys-only entry has nothing else)."""
    return id_of_message(item["pk"]["S"].removeprefix("B#"), int(item["sk"]["S"].removeprefix("M#")))


def to_item(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _attribute(v) for k, v in data.items() if v is not None}


def _attribute(value: Any) -> dict[str, Any]:
    """`TypeSerializer.serialize` with a fast path for the JSON types of `model_dump(mode="json")`: the same items,
    at a third of the CPU (a 10,000-recipient accept serialises some 200,000 values)."""
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is int:
        return {"N": str(value)}
    if kind is bool:
        return {"BOOL": value}
    if kind is dict:
        return {"M": {k: _attribute(v) for k, v in value.items()}}
    if kind is list:
        return {"L": [_attribute(v) for v in value]}
    return dict(serializer().serialize(value))


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    deserialize = deserializer().deserialize
    return {k: deserialize(v) for k, v in item.items()}


#: A record's template params in their order, next to their map: DynamoDB keeps a map's keys in an order of its own,
#: and Tencent's and Huawei's templates take their params by position (`TemplateParamSet`, `templateParas`). A record
#: read back (a resend queued again, a resumed accept, a recovered pack) is sent with the order it was rendered in.
PARAM_ORDER = "template_param_order"


def _param_order(params: dict[str, str] | None) -> dict[str, Any] | None:
    return {"L": [{"S": name} for name in params]} if params and len(params) > 1 else None


def message_item(record: MessageRecord) -> dict[str, Any]:
    parts = split_message_id(record.id)
    assert parts is not None
    if record.events is None and record.receipt_ids is None:
        return _fresh_message_item(record, parts[1])
    data = record.model_dump(mode="json", exclude_none=True)
    data["pk"], data["sk"] = batch_pk(record.batch_id), message_sk(parts[1])
    if record.receipt_ids:
        data["receipt_ids"] = set(record.receipt_ids)  # a string set, so conditions can test `contains`
    if record.provider_message_id:
        data["provider_ref"] = f"{record.provider}#{record.provider_message_id}"
    item = to_item(data)
    order = _param_order(record.template_params)
    if order is not None:
        item[PARAM_ORDER] = order
    return item


def _fresh_message_item(record: MessageRecord, seq: int) -> dict[str, Any]:
    """`message_item` of a record without receipts (every record accept writes: 10,000 in one request), from its
    field values as they are, without `model_dump`: its values are str, str enums, int, bool, a tuple of enums and a
    dict of str, whose JSON forms are plain str, int, bool, list and dict. `tests/unit/test_dynamodb_items.py` holds
    it equal to the `model_dump` way."""
    item: dict[str, Any] = {}
    for name, value in record.__dict__.items():
        if value is None:  # half a record's fields, as a rule
            continue
        kind = type(value)
        if kind is str:
            item[name] = {"S": value}
        elif kind is int:
            item[name] = {"N": str(value)}
        elif isinstance(value, str):  # a str enum: its value
            item[name] = {"S": str.__str__(value)}
        elif kind is tuple:
            item[name] = {"L": [_attribute(str.__str__(v) if isinstance(v, str) else v) for v in value]}
        else:
            item[name] = _attribute(value)
    item["pk"], item["sk"] = {"S": batch_pk(record.batch_id)}, {"S": message_sk(seq)}
    if record.provider_message_id:
        item["provider_ref"] = {"S": f"{record.provider}#{record.provider_message_id}"}
    order = _param_order(record.template_params)
    if order is not None:
        item[PARAM_ORDER] = order
    return item


def header_item(batch: BatchRecord) -> dict[str, Any]:
    data = batch.model_dump(mode="json", exclude_none=True)
    data["pk"], data["sk"] = batch_pk(batch.batch_id), HEADER_SK
    if batch.state in UNSETTLED_STATES and batch.settle_after is not None:
        # In the OpenAccepts index until finished, or (INTERRUPTED) until the reconcile run has ended it whole. A
        # header without `open_accept` is not in it: finishing clears `settle_after` too, so none is kept stale.
        data["open_accept"] = open_accept_key(open_shard(batch.batch_id))
    return to_item(data)


#: The `OpenAccepts` index's partition keys: a header's shard is a hash of its batch id, so its index writes spread
#: over this many partitions (every accept writes one entry and removes it; a keys-only entry, one write unit each).
OPEN_SHARDS = 16


def open_shard(batch_id: str) -> int:
    return zlib.crc32(batch_id.encode()) % OPEN_SHARDS


def open_accept_key(shard: int) -> str:
    return f"OPEN#{shard}"


def batch_id_of_header_keys(item: dict[str, Any]) -> str:
    """The batch id from a header's table keys (the `OpenAccepts` index's keys-only entry)."""
    return str(item["pk"]["S"]).removeprefix("B#")


def _strip_keys(data: dict[str, Any]) -> dict[str, Any]:
    for key in ("pk", "sk", "provider_ref", "open_accept"):
        data.pop(key, None)
    return data


def message_from_item(item: dict[str, Any]) -> MessageRecord:
    data = _strip_keys(from_item(item))
    order, params = data.pop(PARAM_ORDER, None), data.get("template_params")
    if order and params:
        # The written order first; a name it does not list (none, written by this code) after.
        data["template_params"] = {name: params[name] for name in order if name in params} | params
    return MessageRecord.model_validate(data)


def batch_from_item(item: dict[str, Any]) -> BatchRecord:
    return BatchRecord.model_validate(_strip_keys(from_item(item)))


def is_batch_header(item: dict[str, Any], batch_id: str) -> bool:
    """Whether an item at a header's key is the header of `batch_id` (it names the batch). Another item once lived
    at such keys (a provider's circuit breaker at `B#aliyun`, `#`: aws/dynamodb_breakers.py); left over in an older
    table, it is no batch, not a header to fail on."""
    return item.get("batch_id") == {"S": batch_id}
