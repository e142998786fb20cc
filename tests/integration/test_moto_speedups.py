"""local/moto_speedups.py: queries answer exactly what unpatched moto answers, and conditional writes are atomic.

The patches change moto's classes for the whole process, so each check runs in a child Python (this file run as a
script): the same data queried before and after `apply()` must give the same pages.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


def _child(check: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "layers" / "globesms")])}
    completed = subprocess.run(
        [sys.executable, __file__, check], capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    answer: dict[str, Any] = json.loads(completed.stdout.splitlines()[-1])
    return answer


def test_queries_answer_the_same_pages_with_and_without_the_patches() -> None:
    unpatched, patched = _child("unpatched"), _child("patched")
    assert patched["queries"] > 10
    assert patched["pages"] == unpatched["pages"]
    assert any(page["items"] for page in patched["pages"])


def test_concurrent_conditional_adds_never_pass_the_limit() -> None:
    answer = _child("race")
    assert answer["granted_twice"] == 0, answer


def test_a_cancelled_transaction_leaves_every_item_as_it_was() -> None:
    answer = _child("rollback")
    assert answer["unpatched"] == answer["patched"], answer
    assert answer["patched"]["new"] is None and answer["patched"]["counter"] == "3"
    assert answer["patched"]["later"] == "4"  # and the table still takes writes


def test_a_streams_records_read_the_same_with_and_without_the_patches() -> None:
    unpatched, patched = _child("stream-unpatched"), _child("stream-patched")
    assert [r["eventName"] for r in patched["records"]] == ["INSERT", "INSERT", "MODIFY", "REMOVE"]
    assert patched == unpatched


def test_item_answers_read_the_same_with_and_without_the_patches() -> None:
    unpatched, patched = _child("items-unpatched"), _child("items-patched")
    assert patched == unpatched
    assert patched["get_text"]["Item"]["l"] == {"L": [{"S": "é"}, {"N": "1"}]}
    assert patched["get_binary"]["Item"]["b"] == {"B": "AP8="}  # bytes: the serializer's way, base64 on the wire
    assert len(patched["batch"]["Responses"]["t"]) == 2 and patched["query"]["Count"] == 4
    assert len(patched["wide"]["Item"]) == 42
    assert patched["too_large"]["at"] is None and patched["too_large"]["over"]["Code"] == "ValidationException"


_ITEM = {
    "pk": {"S": "B#01J"},
    "sk": {"S": "M#00001"},
    "n": {"N": "12.5"},
    "flag": {"BOOL": True},
    "none": {"NULL": True},
    "events": {"L": [{"M": {"id": {"S": "r1"}, "at": {"S": "2026-12-05T00:00:00Z"}}}]},
    "ids": {"SS": ["r1", "r2"]},
    "counts": {"NS": ["1", "2"]},
}
_REQUESTS = [
    ("BatchWriteItem", {"RequestItems": {"t": [{"PutRequest": {"Item": _ITEM}}, {"DeleteRequest": {"Key": _ITEM}}]}}),
    (
        "UpdateItem",
        {
            "TableName": "t",
            "Key": {"pk": _ITEM["pk"], "sk": _ITEM["sk"]},
            "UpdateExpression": "SET #status = :s, events = list_append(events, :e) REMOVE x",
            "ConditionExpression": "version = :v",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":s": {"S": "DELIVERED"}, ":e": _ITEM["events"], ":v": {"N": "3"}},
            "ReturnValues": "ALL_NEW",
        },
    ),
    (
        "Query",
        {
            "TableName": "t",
            "IndexName": "ProviderRef",
            "KeyConditionExpression": "provider_ref = :r",
            "ExpressionAttributeValues": {":r": {"S": "aliyun#1"}},
            "ExclusiveStartKey": {"pk": _ITEM["pk"], "sk": _ITEM["sk"]},
            "Limit": 1,
            "ScanIndexForward": False,
        },
    ),
    ("BatchGetItem", {"RequestItems": {"t": {"Keys": [{"pk": _ITEM["pk"]}], "ConsistentRead": True}}}),
    (
        "TransactWriteItems",
        {
            "TransactItems": [
                {"Put": {"TableName": "t", "Item": _ITEM, "ConditionExpression": "attribute_not_exists(pk)"}},
                {"ConditionCheck": {"TableName": "t", "Key": {"pk": _ITEM["pk"]}, "ConditionExpression": "a < :b"}},
            ]
        },
    ),
]


def test_requests_without_binary_values_read_as_their_plain_json() -> None:
    """Patch 9: for every request the stack makes, moto's shape-driven parse gives exactly `json.loads` of the body;
    a binary value (which that parse decodes to bytes) sends the body the slow way."""
    import botocore.session
    from botocore.serialize import create_serializer
    from moto.core.parse import JSONParser

    from local.moto_speedups import _BINARY_VALUE

    model = botocore.session.get_session().get_service_model("dynamodb")
    serializer = create_serializer("json")
    for operation, params in _REQUESTS:
        operation_model = model.operation_model(operation)
        body = serializer.serialize_to_request(params, operation_model)["body"]
        assert _BINARY_VALUE.search(body) is None, operation
        parsed = JSONParser(operation_model, map_type=dict).parse({"body": body})
        assert parsed == json.loads(body), operation
    binary = {"TableName": "t", "Item": {"pk": {"S": "p"}, "b": {"B": b"\x00"}, "bs": {"BS": [b"\x01"]}}}
    body = serializer.serialize_to_request(binary, model.operation_model("PutItem"))["body"]
    assert _BINARY_VALUE.search(body) is not None


def test_the_local_stacks_stream_client_hands_over_what_boto3_reads() -> None:
    answer = _child("stream-json")
    batches = [[r["eventName"] for r in event["Records"]] for event in answer["json"]]
    assert batches == [["INSERT", "INSERT"], ["MODIFY", "REMOVE"]]  # BatchSize 2
    assert answer["json"] == answer["boto3"]


# --------------------------------------------------------------------------------------------- the child's side


def _table_t(client: Any, **extra: Any) -> dict[str, Any]:
    """Table "t", keyed by string `pk` and `sk`, on demand; `extra`: more of CreateTable's parameters."""
    description: dict[str, Any] = client.create_table(
        TableName="t",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        **extra,
    )["TableDescription"]
    return description


def _stream_records(*, patched: bool) -> dict[str, Any]:
    """Every record of a table's stream (new and old images) after writes of every attribute type, through boto3:
    the event ids (random), creation times and size estimates (which depend on the time) checked and left out."""
    import datetime

    import boto3
    from moto import mock_aws

    from local import moto_speedups

    if patched:
        moto_speedups.apply()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        arn = _table_t(client, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})[
            "LatestStreamArn"
        ]
        _write_every_type(client)
        # moto routes a stream call by its host, which botocore writes differently since its account-based endpoints
        streams = boto3.client(
            "dynamodbstreams", region_name="us-east-1", endpoint_url="https://streams.dynamodb.us-east-1.amazonaws.com"
        )
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
        answer = streams.get_records(ShardIterator=iterator["ShardIterator"], Limit=1000)
    records = []
    for record in answer["Records"]:
        created = record["dynamodb"].pop("ApproximateCreationDateTime")
        assert isinstance(created, datetime.datetime), created
        record.pop("eventID")
        # moto's size estimate is the length of the record's JSON, creation time included: its digits vary.
        assert isinstance(record["dynamodb"].pop("SizeBytes"), int)
        records.append(record)
    return {"records": records, "next": "NextShardIterator" in answer}


def _write_every_type(client: Any) -> None:
    """Two puts, an update and a delete on table "t", between them every attribute type."""
    every_type = {
        "n": {"N": "12.5"},
        "b": {"B": b"\x00\xff"},
        "bool": {"BOOL": True},
        "null": {"NULL": True},
        "l": {"L": [{"S": "é"}, {"N": "1"}]},
        "m": {"M": {"k": {"SS": ["a", "b"]}}},
        "ns": {"NS": ["1", "2"]},
    }
    client.put_item(TableName="t", Item={"pk": {"S": "p"}, "sk": {"S": "1"}, **every_type})
    client.put_item(TableName="t", Item={"pk": {"S": "p"}, "sk": {"S": "2"}, "s": {"S": "x"}})
    client.update_item(
        TableName="t",
        Key={"pk": {"S": "p"}, "sk": {"S": "2"}},
        UpdateExpression="SET s = :s",
        ExpressionAttributeValues={":s": {"S": "y"}},
    )
    client.delete_item(TableName="t", Key={"pk": {"S": "p"}, "sk": {"S": "1"}})


def _item_answers(*, patched: bool) -> dict[str, Any]:
    """Every item-returning DynamoDB answer over items of every attribute type, through boto3 (binary values as
    base64 text, so the answers compare as JSON)."""
    import base64

    import boto3
    from moto import mock_aws

    from local import moto_speedups

    if patched:
        moto_speedups.apply()

    def sets_sorted(value: Any) -> Any:  # a set's order is the process's (hash seed), on either path
        if isinstance(value, dict):
            return {k: sorted(v) if k in ("SS", "NS", "BS") else sets_sorted(v) for k, v in value.items()}
        return [sets_sorted(v) for v in value] if isinstance(value, list) else value

    def plain(answer: dict[str, Any]) -> dict[str, Any]:
        answer.pop("ResponseMetadata", None)
        text = json.dumps(answer, default=lambda v: base64.b64encode(bytes(v)).decode())
        decoded: dict[str, Any] = sets_sorted(json.loads(text))
        return decoded

    text_types = {
        "n": {"N": "12.5"},
        "bool": {"BOOL": False},
        "null": {"NULL": True},
        "l": {"L": [{"S": "é"}, {"N": "1"}]},
        "m": {"M": {"k": {"SS": ["a", "b"]}, "e": {"M": {}}}},
        "ns": {"NS": ["1", "2"]},
    }
    key_1, key_2 = {"pk": {"S": "p"}, "sk": {"S": "1"}}, {"pk": {"S": "p"}, "sk": {"S": "2"}}
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        _table_t(client)
        client.put_item(TableName="t", Item={**key_1, **text_types})
        client.put_item(TableName="t", Item={**key_2, "b": {"B": b"\x00\xff"}, "bs": {"BS": [b"\x01"]}})
        wide = {f"a{n}": {"M": {"l": {"L": [{"S": "x" * n}]}}} for n in range(40)}  # many attributes, nested
        client.put_item(TableName="t", Item={"pk": {"S": "p"}, "sk": {"S": "3"}, **wide})
        refused = {}
        for name, size in (("over", 405_000), ("at", 404_980)):  # moto's limit: 405,000 bytes in all
            try:
                item = {"pk": {"S": "p"}, "sk": {"S": name}, "big": {"S": "x" * (size - 11)}}
                client.put_item(TableName="t", Item=item)
                refused[name] = None
            except client.exceptions.ClientError as exc:
                refused[name] = exc.response["Error"]
        return {
            "wide": plain(client.get_item(TableName="t", Key={"pk": {"S": "p"}, "sk": {"S": "3"}})),
            "too_large": refused,
            "get_text": plain(client.get_item(TableName="t", Key=key_1, ConsistentRead=True)),
            "get_binary": plain(client.get_item(TableName="t", Key=key_2)),
            "get_missing": plain(client.get_item(TableName="t", Key={"pk": {"S": "p"}, "sk": {"S": "0"}})),
            "projected": plain(client.get_item(TableName="t", Key=key_1, ProjectionExpression="n, m.k")),
            "batch": plain(client.batch_get_item(RequestItems={"t": {"Keys": [key_1, key_2]}})),
            "query": plain(
                client.query(
                    TableName="t",
                    KeyConditionExpression="pk = :p",
                    ExpressionAttributeValues={":p": {"S": "p"}},
                    ReturnConsumedCapacity="TOTAL",
                )
            ),
            "scan": plain(client.scan(TableName="t", Limit=1)),
            "update": plain(
                client.update_item(
                    TableName="t",
                    Key=key_1,
                    UpdateExpression="SET n = n + :one",
                    ExpressionAttributeValues={":one": {"N": "1"}},
                    ReturnValues="ALL_NEW",
                )
            ),
            # The same expression text again (patch 12 shares its parse): applied anew, to this item's new value.
            "update_again": plain(
                client.update_item(
                    TableName="t",
                    Key=key_1,
                    UpdateExpression="SET n = n + :one",
                    ExpressionAttributeValues={":one": {"N": "2"}},
                    ReturnValues="UPDATED_NEW",
                )
            ),
            "update_refused": _refusal(
                lambda: client.update_item(
                    TableName="t",
                    Key={"pk": {"S": "p"}, "sk": {"S": "9"}},
                    UpdateExpression="SET n = n + :one",
                    ExpressionAttributeValues={":one": {"N": "1"}},
                )
            ),
            "put_old": plain(client.put_item(TableName="t", Item={**key_1, "s": {"S": "x"}}, ReturnValues="ALL_OLD")),
            "transact_get": plain(client.transact_get_items(TransactItems=[{"Get": {"TableName": "t", "Key": key_1}}])),
            "delete_old": plain(client.delete_item(TableName="t", Key=key_2, ReturnValues="ALL_OLD")),
        }


def _refusal(call: Any) -> dict[str, Any] | None:
    try:
        call()
    except Exception as exc:  # the answer compared is the error boto3 raised, whatever it is
        response: dict[str, Any] = getattr(exc, "response", {"type": type(exc).__name__})
        return response.get("Error", response)
    return None


def _events_by_both_clients() -> dict[str, Any]:
    """The events a StreamReader hands over from a patched moto server's stream, read through boto3 and through
    local.streams.JsonStreamsClient (what the local stack's hosts use)."""
    import base64

    import boto3

    from local.aws import start_moto
    from local.processes import free_port
    from local.streams import JsonStreamsClient, StreamReader
    from local.template import StreamEventSource

    port = free_port()
    server = start_moto(port)
    try:
        url = f"http://127.0.0.1:{port}"
        client = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1")
        arn = _table_t(client, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})[
            "LatestStreamArn"
        ]
        _write_every_type(client)
        source = StreamEventSource(
            function_id="F", event_name="E", table_id="T", batch_size=2, maximum_batching_window_seconds=0
        )
        events: dict[str, list[Any]] = {"boto3": [], "json": []}
        streams = {
            "boto3": boto3.client("dynamodbstreams", endpoint_url=url, region_name="us-east-1"),
            "json": JsonStreamsClient(url, "us-east-1"),
        }
        for name, reader in streams.items():
            StreamReader(reader, arn, source, events[name].append, from_start=True).read()
    finally:
        server.stop()

    def as_json(value: Any) -> Any:  # botocore decodes B to bytes; Lambda's JSON event (and moto's) has base64
        return base64.b64encode(value).decode() if isinstance(value, bytes) else str(value)

    for event in events["boto3"] + events["json"]:
        for record in event["Records"]:
            record["dynamodb"]["ApproximateCreationDateTime"] = round(record["dynamodb"]["ApproximateCreationDateTime"])
    return {name: json.loads(json.dumps(found, default=as_json)) for name, found in events.items()}


# --------------------------------------------------------------------------------------------- its other checks


def _rollback(*, patched: bool) -> dict[str, Any]:
    """A transaction that puts a new item and updates a counter, cancelled by a failed condition on a third item."""
    import boto3
    from moto import mock_aws

    from local import moto_speedups

    if patched:
        moto_speedups.apply()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        _table_t(client)
        counter = {"pk": {"S": "C"}, "sk": {"S": "$"}}
        client.put_item(TableName="t", Item={**counter, "n": {"N": "3"}})
        client.put_item(TableName="t", Item={"pk": {"S": "V"}, "sk": {"S": "$"}, "ver": {"N": "2"}})
        add = {"TableName": "t", "Key": counter, "UpdateExpression": "ADD n :one"}
        items: list[dict[str, Any]] = [
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "NEW"}, "sk": {"S": "$"}}}},
            {"Update": {**add, "ExpressionAttributeValues": {":one": {"N": "1"}}}},
            {
                "Put": {
                    "TableName": "t",
                    "Item": {"pk": {"S": "V"}, "sk": {"S": "$"}, "ver": {"N": "3"}},
                    "ConditionExpression": "ver = :seen",
                    "ExpressionAttributeValues": {":seen": {"N": "1"}},
                }
            },
        ]
        with contextlib.suppress(client.exceptions.TransactionCanceledException):
            client.transact_write_items(TransactItems=items)
        new = client.get_item(TableName="t", Key={"pk": {"S": "NEW"}, "sk": {"S": "$"}}).get("Item")
        before = client.get_item(TableName="t", Key=counter)["Item"]["n"]["N"]
        client.transact_write_items(
            TransactItems=[{"Update": {**add, "ExpressionAttributeValues": {":one": {"N": "1"}}}}]
        )
        later = client.get_item(TableName="t", Key=counter)["Item"]["n"]["N"]
    return {"new": new, "counter": before, "later": later}


def _queries(client: Any, table: str) -> list[Any]:
    """Every page of a set of queries: partitions with range conditions, filters, limits, both directions, and the
    ProviderRef index (a value several items share, a moved value, a deleted item's value, a removed value, a value
    nobody has)."""
    asks: list[dict[str, Any]] = [
        {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "B#b1"}}},
        {
            "KeyConditionExpression": "pk = :p AND begins_with(sk, :m)",
            "ExpressionAttributeValues": {":p": {"S": "B#b2"}, ":m": {"S": "M#"}},
            "Limit": 7,
        },
        {
            "KeyConditionExpression": "pk = :p AND sk BETWEEN :a AND :b",
            "FilterExpression": "#s = :s",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {
                ":p": {"S": "B#b3"},
                ":a": {"S": "M#00005"},
                ":b": {"S": "M#00030"},
                ":s": {"S": "SUBMITTED"},
            },
            "ScanIndexForward": False,
            "Limit": 4,
        },
        {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "B#nobody"}}},
    ]
    refs = ("aliyun#shared", "aliyun#moved-to", "aliyun#moved-from", "aliyun#deleted", "aliyun#removed", "aliyun#none")
    for value in (*refs, "x#3"):
        asks.append(
            {
                "IndexName": "ProviderRef",
                "KeyConditionExpression": "provider_ref = :r",
                "ExpressionAttributeValues": {":r": {"S": value}},
                "Limit": 2,
            }
        )
    pages = []
    for ask in asks:
        start = None
        while True:
            page = client.query(TableName=table, **ask, **({"ExclusiveStartKey": start} if start else {}))
            pages.append({"items": page["Items"], "last": page.get("LastEvaluatedKey")})
            start = page.get("LastEvaluatedKey")
            if not start:
                break
    return pages


def _answers(*, patched: bool) -> dict[str, Any]:
    """The same writes and queries, with the patches applied first (as the runner does) or not at all."""
    import boto3
    from moto import mock_aws

    from local import moto_speedups
    from local.stack import LocalStack

    if patched:
        moto_speedups.apply()
    with mock_aws():
        table = LocalStack.deploy(environ={"AWS_DEFAULT_REGION": "us-east-1"}).context.refs["MessagesTable"]
        client = boto3.client("dynamodb", region_name="us-east-1")
        for batch in range(1, 4):
            for seq in range(40):
                item = {
                    "pk": {"S": f"B#b{batch}"},
                    "sk": {"S": f"M#{seq:05d}"},
                    "status": {"S": "SUBMITTED" if seq % 3 else "FAILED"},
                    "provider_ref": {"S": "aliyun#shared" if seq % 10 == 0 else f"x#{batch * 100 + seq}"},
                }
                client.put_item(TableName=table, Item=item)
        # The index map must follow a value that moves twice, an item replaced whole, and forget a deleted item.
        moved = {"pk": {"S": "B#b1"}, "sk": {"S": "M#00001"}}
        for value in ("aliyun#moved-from", "aliyun#moved-to"):
            client.update_item(
                TableName=table,
                Key=moved,
                UpdateExpression="SET provider_ref = :r",
                ExpressionAttributeValues={":r": {"S": value}},
            )
        deleted = {"pk": {"S": "B#b1"}, "sk": {"S": "M#00002"}}
        client.put_item(TableName=table, Item={**deleted, "provider_ref": {"S": "aliyun#deleted"}})
        client.delete_item(TableName=table, Key=deleted)
        client.put_item(TableName=table, Item={"pk": {"S": "B#b2"}, "sk": {"S": "M#00003"}, "status": {"S": "X"}})
        # A value taken away by a later write (a failover's resend removes the provider reference).
        removed = {"pk": {"S": "B#b3"}, "sk": {"S": "M#00004"}}
        client.update_item(
            TableName=table,
            Key=removed,
            UpdateExpression="SET provider_ref = :r",
            ExpressionAttributeValues={":r": {"S": "aliyun#removed"}},
        )
        client.update_item(TableName=table, Key=removed, UpdateExpression="REMOVE provider_ref")
        pages = _queries(client, table)
    return {"queries": len(pages), "pages": pages}


def _check_race(trials: int = 150, racers: int = 6) -> dict[str, Any]:
    import boto3

    from local.aws import start_moto
    from local.processes import free_port

    port = free_port()
    server = start_moto(port)  # patched, as the runner's
    try:
        url = f"http://127.0.0.1:{port}"
        admin = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1")
        admin.create_table(
            TableName="limits",
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        )
        clients = [boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1") for _ in range(racers)]
        granted_twice = 0
        for trial in range(trials):
            wins: list[int] = []
            barrier = threading.Barrier(racers)

            def take(client: Any, key: str = f"L#{trial}", wins: list[int] = wins, barrier: Any = barrier) -> None:
                barrier.wait()
                try:
                    # The rate limiter's own write (globesms.aws.dynamodb_rate_limiter): 1 permit, limit 1.
                    client.update_item(
                        TableName="limits",
                        Key={"pk": {"S": key}},
                        UpdateExpression="ADD used :n SET expires_at = if_not_exists(expires_at, :ttl)",
                        ConditionExpression="attribute_not_exists(used) OR used <= :room",
                        ExpressionAttributeValues={":n": {"N": "1"}, ":room": {"N": "0"}, ":ttl": {"N": "1"}},
                    )
                    wins.append(1)
                except client.exceptions.ConditionalCheckFailedException:
                    pass

            threads = [threading.Thread(target=take, args=(c,)) for c in clients]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            granted_twice += len(wins) > 1
        return {"trials": trials, "granted_twice": granted_twice}
    finally:
        server.stop()


if __name__ == "__main__":
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    os.environ.pop("AWS_ENDPOINT_URL", None)
    checks = {
        "unpatched": lambda: _answers(patched=False),
        "patched": lambda: _answers(patched=True),
        "race": _check_race,
        "rollback": lambda: {"unpatched": _rollback(patched=False), "patched": _rollback(patched=True)},
        "stream-unpatched": lambda: _stream_records(patched=False),
        "stream-patched": lambda: _stream_records(patched=True),
        "stream-json": _events_by_both_clients,
        "items-unpatched": lambda: _item_answers(patched=False),
        "items-patched": lambda: _item_answers(patched=True),
    }
    print(json.dumps(checks[sys.argv[1]](), default=str))
