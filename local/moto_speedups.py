"""Make the moto server the runner starts keep up with long local runs (`make soak`, `make bench`), and make its
conditional writes atomic, as DynamoDB's are.

Three of moto's costs grow with traffic or with the size of a table, and against a table of 100,000 messages they
made every delivery receipt take a tenth of a second of the one core moto's server can use (checked against
moto 5.2.5, with a sampling profile of its server threads):

1. every request lists moto's package directory (`backends.list_of_moto_modules`, an `os.listdir` and an
   `os.path.isdir` per service) to find the backend for the request's host: the list is cached (it cannot change
   while the process runs);
2. a Query on a table's own key sorts *every* item of the table to pick one partition: it is given that partition
   only;
3. a Query on a global secondary index does the same to find the items with one hash value (the receipts' lookup
   by provider message id): it is given the items whose index hash attribute has that value, from a map kept on
   every write (PutItem, BatchWriteItem, UpdateItem, and the same inside TransactWriteItems) and checked against
   the item when read, so an entry left behind by a later write or a delete never shows.

What a Query answers is unchanged: moto's own code still sorts, filters, limits and pages, on the candidates
instead of the whole table (`all_items` is what it reads them from; it is overridden for that one call in that
one thread). Anything these patches do not recognise (an index with a composite hash key, a query without an
equality on the hash key) goes through moto untouched.

4. A conditional write is not atomic in moto's threaded server (see `_atomic`), so writes are made one at a time.
5. TransactWriteItems backs up a table (a deep copy, for its rollback) once per *item* of the transaction: a
   transaction of 100 items (the OTP guard's counters of 99 numbers and a marker) copied the whole table 100 times,
   and even one copy per transaction grows with the table (an accept took 20 s in `make soak --quick`). The backup
   is the items the transaction names, and a failed transaction puts them back (`_one_backup`): what it restores is
   the same, since no other write runs during a transaction (`_atomic`). A copy of the table walked its item maps
   while reads added to them (moto's defaultdict), failing with "dictionary changed size during iteration".

6. GetRecords on a table's stream goes through moto's generic response serializer, which walks every attribute of
   every record's old and new images in Python: with the status counts stream on the messages table (every status
   change of every recipient), that serializer was moto's largest cost in `make bench`'s utilisation run (a
   sampling profile of the runner: 38% of moto's samples in `moto/core/serialize.py`), and moto's one core was
   saturated. moto's records are kept as the wire's JSON already (`StreamRecord.to_json`), so the answer is that
   JSON, written with moto's own DynamoDB encoder, the creation time as epoch seconds as the JSON protocol writes
   a timestamp (`_records_as_json`; tests/integration/test_moto_speedups.py compares both answers through boto3).

7. Every other DynamoDB answer holding items (GetItem, BatchGetItem, Query, Scan, and PutItem, UpdateItem,
   DeleteItem, TransactGetItems with their returned attributes) went through the same serializer: 15% of the moto
   DynamoDB process's samples in an 8,000-recipient soak. moto has them as the wire's JSON already
   (`dynamo_to_dict`), so the answer is that JSON (`_plain_json_result`); an answer the JSON encoder refuses (a
   binary attribute: moto holds bytes, which the wire writes as base64; a timestamp) goes through the serializer
   as before (tests/integration/test_moto_speedups.py compares both answers through boto3, every type included).

8. Building an item (every PutItem, every item of a BatchWriteItem) checks its size one attribute at a time, and
   each check re-measures every attribute already in it (`LimitedSizeDict.__setitem__`): quadratic in the item's
   attributes, and a message record has ~30, some of them lists of maps. That was a quarter of the DynamoDB
   process's samples in `make bench`'s utilisation run (py-spy, `--gil`). The item is measured once, when built
   (`_patch_item_init`): the sizes only add up, so the whole is over moto's limit exactly when one of moto's
   partial sums was. Writes to an existing item's attributes still go through moto's own check.

9. Every DynamoDB request's JSON is walked along the operation's botocore shape in Python (`JSONParser`), a fifth
   of the DynamoDB process's samples in the same profile (a BatchWriteItem of 25 records is ~750 attributes). For
   the DynamoDB JSON protocol that walk changes nothing but blobs (base64 text to bytes), timestamps and floats, and
   no DynamoDB data-plane request has a timestamp or float member; so a body naming no binary value (`"B"` or
   `"BS"`, found by a regex over the text) is read with `json.loads` as it is (`_patch_request_parsing`), any other
   body as moto reads it (tests/integration/test_moto_speedups.py holds the two equal on the requests the stack
   makes).

10. Every write to a table with a stream makes a stream record of the item's old and new images, which moto
    builds with a deep copy of every nested value (`DynamoType.to_regular_json`) and then dumps to JSON once only to
    take the dump's length as the record's `SizeBytes` ("a substantial overestimate", its comment says): together a
    quarter of the DynamoDB process's samples in the utilisation window once patches 8 and 9 were in. Nested text,
    number and boolean values are shared instead of copied (they cannot change; a binary value still goes through
    moto's own code), and `SizeBytes` is the images' sizes as DynamoDB counts an item (patch 8 measures every new
    item; a stale measure after an update only changes the estimate). Nothing in the stack reads `SizeBytes`.

11. Every request looks up its handler method among the names of the response class's functions, listed anew
    each time with `inspect.getmembers` (`method_names_from_class`): 5% of the DynamoDB process's samples in the
    OTP latency run (py-spy, `--gil`). The names are cached per class (`_patch_method_names`), and each request
    still gets its method from the class by name: the patches here that replace a response class's method
    (`parse_parameters`, `get_records`, `execute_result`) replace one that exists, and all of them are applied
    before the first request, so the names cannot change after they are cached.

12. Every UpdateItem parses its update expression twice (the request handler, to check the names and values it
    uses; the backend, to apply it), 4% of the same samples. The expressions are few (one per call site of the
    stack: the values change, not the text), so the parse is cached by the text (`_patch_update_parsing`). Sharing
    the tree is safe: the request handler only reads it (`find_clauses`), and the backend's validator works on a
    deep copy of it (`Validator.__init__`), which is what the executor then applies.

The local stack's moto servers are patched (`local.aws.serve_moto`), and so is the tests' in-process moto
(tests/conftest.py); `make bench`'s cost pipeline uses moto unpatched (its Lambda durations include moto's CPU).
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import re
import threading
from typing import Any

_applied = False
_override = threading.local()  # .table, .items: the candidates `Table.all_items` returns during one query


def apply() -> None:
    """Patch moto's server code in this process (idempotent)."""
    global _applied
    if _applied:
        return
    from moto import backends
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    listed = backends.list_of_moto_modules
    backends.list_of_moto_modules = functools.cache(lambda: tuple(listed()))
    _patch_table(Table)
    _patch_backend(DynamoDBBackend)
    _patch_stream_records()
    _patch_item_results()
    _patch_item_init()
    _patch_request_parsing()
    _patch_stream_images()
    _patch_method_names()
    _patch_update_parsing()
    _applied = True


def _patch_method_names() -> None:
    from moto.core import responses

    listed = responses.method_names_from_class
    responses.method_names_from_class = functools.cache(lambda clazz: frozenset(listed(clazz)))


def _patch_update_parsing() -> None:
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    parse = UpdateExpressionParser.make.__func__  # type: ignore[attr-defined]
    UpdateExpressionParser.make = classmethod(functools.lru_cache(maxsize=1024)(parse))  # type: ignore[method-assign,assignment]


_IMMUTABLE_LEAVES = (str, int, float, bool, type(None))


def _patch_stream_images() -> None:
    from moto.core.utils import utcnow
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import StreamRecord
    from moto.moto_api._internal import mock_random

    original_regular_json = DynamoType.to_regular_json

    def leaf(value: Any) -> Any:
        return value if type(value) in _IMMUTABLE_LEAVES else copy.deepcopy(value)

    def to_regular_json(self: Any) -> dict[str, Any]:
        value = self.value
        if self.type in ("B", "BS"):
            return original_regular_json(self)  # base64 text decoded to bytes, moto's way
        if isinstance(value, dict):
            value = {k: v.to_regular_json() if isinstance(v, DynamoType) else leaf(v) for k, v in value.items()}
        elif isinstance(value, list):
            value = [v.to_regular_json() if isinstance(v, DynamoType) else leaf(v) for v in value]
        elif type(value) not in _IMMUTABLE_LEAVES:
            return original_regular_json(self)
        return {self.type: value}

    def stream_record_init(
        self: Any, table: Any, stream_type: str, event_name: str, old: Any, new: Any, seq: int
    ) -> None:
        # moto's StreamRecord.__init__ (5.2.5) but for SizeBytes.
        rec = old if old is not None else new
        keys = {table.hash_key_attr: rec.hash_key.to_json()}
        if table.range_key_attr is not None and rec is not None:
            keys[table.range_key_attr] = rec.range_key.to_json()
        dynamodb: dict[str, Any] = {
            "StreamViewType": stream_type,
            "ApproximateCreationDateTime": utcnow(),
            "SequenceNumber": str(seq),
            "SizeBytes": sum(_item_size(item) for item in (old, new) if item is not None),
            "Keys": keys,
        }
        if stream_type in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES") and new is not None:
            dynamodb["NewImage"] = new.to_json()["Attributes"]
        if stream_type in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES") and old is not None:
            dynamodb["OldImage"] = old.to_json()["Attributes"]
        self.record = {
            "eventID": mock_random.uuid4().hex,
            "eventName": event_name,
            "eventSource": "aws:dynamodb",
            "eventVersion": "1.0",
            "awsRegion": "us-east-1",
            "dynamodb": dynamodb,
        }

    DynamoType.to_regular_json = to_regular_json
    StreamRecord.__init__ = stream_record_init


def _item_size(item: Any) -> int:
    size: int | None = getattr(item, "measured_size", None)
    return item.size() if size is None else size


#: A binary attribute value in a DynamoDB request's JSON (`{"B": "<base64>"}`, `{"BS": [...]}`); also matches an
#: attribute or placeholder named so, which only sends that request the slow way.
_BINARY_VALUE = re.compile(rb'"BS?"\s*:')


def _patch_request_parsing() -> None:
    from moto.dynamodb.responses import DynamoHandler

    original_parse = DynamoHandler.parse_parameters

    def parse_parameters(self: Any, request: Any) -> None:
        body = request.data
        if isinstance(body, str):
            body = body.encode()
        if not body:
            self.params = {}
        elif _BINARY_VALUE.search(body):
            original_parse(self, request)
        else:
            try:
                params = json.loads(body)
            except ValueError:
                params = None
            if isinstance(params, dict):
                self.params = params
            else:
                original_parse(self, request)  # not a JSON object: moto's answer, whatever it is

    DynamoHandler.parse_parameters = parse_parameters


def _patch_item_init() -> None:
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, ItemSizeTooLarge, LimitedSizeDict
    from moto.dynamodb.models.utilities import bytesize

    def __init__(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
        self.hash_key = hash_key
        self.range_key = range_key
        values = {key: DynamoType(value) for key, value in attrs.items()}
        self.measured_size = sum(bytesize(key) + value.size() for key, value in values.items())
        if self.measured_size > ITEM_SIZE_LIMIT:
            raise ItemSizeTooLarge
        self.attrs = LimitedSizeDict()
        dict.update(self.attrs, values)  # the dict's own update: no per-attribute check again

    Item.__init__ = __init__


#: moto's item size limit (`LimitedSizeDict.__setitem__`): between DynamoDB's documented 400 KB and the 409-410 KB
#: moto's authors measured.
ITEM_SIZE_LIMIT = 405_000


def _patch_stream_records() -> None:
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    def get_records(self: Any) -> str:
        limit = self._get_param("Limit")
        if limit is None:
            limit = 1000  # as moto's own handler
        return _records_as_json(self.backend.get_records(self._get_param("ShardIterator"), limit))

    DynamoDBStreamsHandler.get_records = get_records


#: The DynamoDB operations whose answer is items and counts: nothing in them the JSON protocol writes differently
#: from Python's JSON (numbers are strings on the wire, booleans and nulls JSON's own).
PLAIN_JSON_OPERATIONS = frozenset(
    {"GetItem", "BatchGetItem", "Query", "Scan", "PutItem", "UpdateItem", "DeleteItem", "TransactGetItems"}
)


def _patch_item_results() -> None:
    from moto.dynamodb.responses import DynamoResult

    serialized = DynamoResult.execute_result

    def execute_result(self: Any, context: Any) -> Any:
        if context.operation_model.name in PLAIN_JSON_OPERATIONS:
            body = _plain_json_result(self.result)
            if body is not None:
                return 200, {"Content-Type": "application/x-amz-json-1.0"}, body
        return serialized(self, context)

    DynamoResult.execute_result = execute_result


def _plain_json_result(result: Any) -> str | None:
    """The answer's body, or None when it holds a value plain JSON cannot write as the wire does (bytes, a
    timestamp, a Decimal)."""
    try:
        return json.dumps(result, separators=(",", ":"))
    except (TypeError, ValueError):
        return None


def _records_as_json(result: dict[str, Any]) -> str:
    """moto's GetRecords result (records as `StreamRecord.to_json` keeps them) as the body of its answer."""
    from moto.dynamodb.models.utilities import dynamo_json_dump

    records = []
    for record in result["Records"]:
        created = record["dynamodb"].get("ApproximateCreationDateTime")
        if created is not None and not isinstance(created, int | float):
            record = {**record, "dynamodb": {**record["dynamodb"], "ApproximateCreationDateTime": created.timestamp()}}
        records.append(record)
    return str(dynamo_json_dump({**result, "Records": records}))


def _patch_table(table_class: Any) -> None:
    original_all_items = table_class.all_items
    original_put_item = table_class.put_item
    original_query = table_class.query
    query_signature = inspect.signature(original_query)

    def all_items(self: Any) -> Any:
        if getattr(_override, "table", None) is self:
            return list(_override.items)
        return original_all_items(self)

    def put_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        item = original_put_item(self, *args, **kwargs)
        _index(self, item)
        return item

    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = query_signature.bind(self, *args, **kwargs)
        candidates = _candidates(self, bound.arguments)
        if candidates is None:
            return original_query(self, *args, **kwargs)
        _override.table, _override.items = self, candidates
        try:
            return original_query(self, *args, **kwargs)
        finally:
            _override.table = _override.items = None

    table_class.all_items = all_items
    table_class.put_item = put_item
    table_class.query = query


def _patch_backend(backend_class: Any) -> None:
    original_update_item = backend_class.update_item

    def update_item(self: Any, table_name: str, *args: Any, **kwargs: Any) -> Any:
        item = original_update_item(self, table_name, *args, **kwargs)
        _index(self.get_table(table_name), item)
        return item

    backend_class.update_item = update_item
    backend_class.transact_write_items = _one_backup(backend_class.transact_write_items)
    for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
        setattr(backend_class, name, _atomic(getattr(backend_class, name)))


class _TablesNotCopied:
    """`copy` as moto's DynamoDB models module sees it during one transaction: a Table is not copied (its backup is
    the touched items, `_touched`); anything else (an item, for an update's old image) is copied as usual."""

    def __init__(self, real: Any, table_class: type) -> None:
        self._real, self._table_class = real, table_class

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        if isinstance(value, self._table_class):
            return value
        return self._real.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _touched(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Any, Any, Any, Any]]:
    """(table, hash key, range key, a copy of the item or None) for every item the transaction names."""
    import copy

    from moto.dynamodb.models.dynamo_type import DynamoType

    saved = []
    for entry in transact_items:
        for op in entry.values():
            table = backend.tables.get(op.get("TableName"))
            if table is None:
                continue
            key = op.get("Key") or op.get("Item") or {}
            if table.hash_key_attr not in key:
                continue
            hash_key = DynamoType(key[table.hash_key_attr])
            range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr in key else None
            partition = table.items.get(hash_key)  # never `items[...]`: a defaultdict would add the partition
            found = partition.get(range_key) if range_key is not None and partition else partition
            if range_key is not None and not partition:
                found = None
            saved.append((table, hash_key, range_key, copy.deepcopy(found) if found is not None else None))
    return saved


def _restore(saved: list[tuple[Any, Any, Any, Any]], streams: list[tuple[Any, int]]) -> None:
    for table, hash_key, range_key, item in reversed(saved):
        if range_key is None:
            if item is None:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = item
        elif item is None:
            table.items.get(hash_key, {}).pop(range_key, None)
        else:
            table.items[hash_key][range_key] = item
    for shard, length in streams:
        del shard.items[length:]  # the stream records of writes undone


def _one_backup(transact: Any) -> Any:
    import copy

    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    @functools.wraps(transact)
    def one_backup(backend: Any, transact_items: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
        # Under `_writes` (applied over this wrapper): no other write runs meanwhile, so undoing the items the
        # transaction names restores what moto's whole-table copy would.
        saved = _touched(backend, transact_items)
        shards = {id(t): t.stream_shard for t, *_ in saved if getattr(t, "stream_shard", None) is not None}
        streams = [(shard, len(shard.items)) for shard in shards.values()]
        models.copy = _TablesNotCopied(copy, Table)
        try:
            return transact(backend, transact_items, *args, **kwargs)
        except Exception:
            _restore(saved, streams)
            raise
        finally:
            models.copy = copy

    return one_backup


#: One write at a time (BatchWriteItem is a put or delete per item, so each item's write is atomic too).
_writes = threading.RLock()


def _atomic(write: Any) -> Any:
    """DynamoDB checks a write's condition and applies it atomically; moto's server does not (it checks, then
    validates the update expression, then writes, while other request threads run), so two conditional ADDs on one
    rate-limit counter could both pass: `make soak` saw two calls in a second of a 1-call/s limit."""

    @functools.wraps(write)
    def atomic(*args: Any, **kwargs: Any) -> Any:
        with _writes:
            return write(*args, **kwargs)

    return atomic


# ---------------------------------------------------------------------------------------------------------------
# The index hash-value map of each table: index name -> hash value -> keys of the items that had it when written


def _single_hash_attributes(table: Any) -> dict[str, str]:
    """Index name -> its hash attribute, for the table's indexes with a hash key of one attribute (kept on the
    table, computed again only if its indexes change)."""
    indexes = table.all_indexes()
    names = tuple(index.name for index in indexes)
    cached = table.__dict__.get("_local_hash_attributes")
    if cached is not None and cached[0] == names:
        return cached[1]  # type: ignore[no-any-return]
    found = {}
    for index in indexes:
        hashes = [key["AttributeName"] for key in index.schema if key["KeyType"] == "HASH"]
        if len(hashes) == 1:
            found[index.name] = hashes[0]
    table.__dict__["_local_hash_attributes"] = (names, found)
    return found


def _maps(table: Any) -> dict[str, dict[Any, set[tuple[Any, Any]]]]:
    """Index name -> hash value -> keys of the items written with it. No lock: each dict and set operation is atomic
    under the GIL, and readers copy a set (also atomic) before iterating it."""
    return table.__dict__.setdefault("_local_index_map", {})  # type: ignore[no-any-return]


def _index(table: Any, item: Any) -> None:
    if item is None:
        return
    maps = _maps(table)
    for index_name, attribute in _single_hash_attributes(table).items():
        value = item.attrs.get(attribute)
        if value is not None:
            maps.setdefault(index_name, {}).setdefault(value, set()).add((item.hash_key, item.range_key))


def _candidates(table: Any, arguments: dict[str, Any]) -> list[Any] | None:
    """The items a query can only match, or None to let moto look at every item."""
    index_name = arguments.get("index_name")
    if not index_name:
        hash_key = arguments.get("hash_key")
        if hash_key is None:
            return None
        partition = table.items.get(hash_key)
        if partition is None:
            return []
        return list(partition.values()) if table.range_key_attr else [partition]
    attribute = _single_hash_attributes(table).get(index_name)
    conditions = dict(arguments.get("hash_key_conditions") or [])
    if attribute is None or set(conditions) != {attribute}:
        return None
    value = conditions[attribute]
    keys = _maps(table).get(index_name, {}).get(value, set()).copy()
    items = []
    for hash_key, range_key in keys:
        item = table.get_item(hash_key, range_key) if table.range_key_attr else table.items.get(hash_key)
        # A later write or delete leaves stale keys: the item must still have the value (a write that removed the
        # attribute leaves None, which moto's DynamoType cannot be compared with).
        current = None if item is None else item.attrs.get(attribute)
        if current is not None and current == value:
            items.append(item)
    return items
