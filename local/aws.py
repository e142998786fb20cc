"""The AWS side of the local stack: a moto server, and the tables and queues template.yaml declares.

Provisioning is idempotent (existing tables and queues are reused), so every process of the stack can call it to
learn the physical names and URLs, and `make run` can be restarted against a moto server that is still running.

What moto does and does not do, checked against moto 5.2.5:
- RedrivePolicy IS enforced: a ReceiveMessage that finds a visible message already received maxReceiveCount times
  moves it to the dead-letter queue instead of returning it (so, as in SQS, on the receive after the last one).
- Visibility timeouts, ChangeMessageVisibility, ApproximateReceiveCount and long polling behave as in SQS.
- TTL is stored but never expires items; SSE and point-in-time recovery are accepted and mean nothing.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import threading
from collections.abc import Mapping, MutableMapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import boto3
import botocore.loaders
import botocore.session
from botocore.exceptions import ClientError

from local.processes import listen_on, reserve_port
from local.template import QueueSpec, ResolveContext, TableSpec, Template, resolve

LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}

log = logging.getLogger("local.aws")


def apply_local_credentials(environ: MutableMapping[str, str]) -> None:
    """Fake credentials and a region, unless the user set their own (moto accepts anything)."""
    for name, value in LOCAL_CREDENTIALS.items():
        environ.setdefault(name, value)
    environ.setdefault("AWS_REGION", environ["AWS_DEFAULT_REGION"])


def region(environ: MutableMapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"]


@dataclass
class MotoServer:
    """moto's server, serving from a thread of this process."""

    server: Any  # werkzeug's BaseWSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.socket.getsockname()[1])

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join()
        self.server.server_close()


def start_moto(port: int, host: str = "127.0.0.1") -> MotoServer:
    """moto's server in a thread of this process, on loopback unless told otherwise (port 0: any free port, see
    `.port`), with the speed-ups of local/moto_speedups.py. What moto's ThreadedMotoServer does, except that a
    port in use raises OSError here (ThreadedMotoServer's thread exits and its start() waits forever)."""
    return serve_moto(reserve_port(host, port))


def serve_moto(reserved: socket.socket) -> MotoServer:
    """moto's server (patched by local/moto_speedups.py) in a thread of this process, on a socket bound but not
    listening yet (`local.processes.reserve_port`): it listens once it can serve. Closes `reserved`."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    from local import moto_speedups

    moto_speedups.apply()
    try:
        app = DomainDispatcherApplication(create_backend_app)
        host = reserved.getsockname()[0]
        server = make_server(host, 0, app, threaded=True, request_handler=MotoRequestHandler, fd=reserved.fileno())
    finally:
        reserved.close()  # werkzeug uses a duplicate of it
    listen_on(server.socket, server.request_queue_size)
    thread = threading.Thread(target=server.serve_forever, name="moto", daemon=True)
    thread.start()
    return MotoServer(server, thread)


# The local stack runs moto as two processes, so that moto, the busiest process of the stack, can use two cores:
# DynamoDB (with its streams, which read the same tables) on one, SQS and every other service on the other. boto3
# finds each through its service's endpoint variable (`AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL`), as
# it would find any per-service endpoint.
DYNAMODB_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_DYNAMODB_STREAMS")
SERVICE_IDS = {"dynamodbstreams": "dynamodb_streams"}  # boto3's client name -> its service id, where they differ


def moto_endpoints(ports: Mapping[str, int]) -> dict[str, str]:
    """The endpoint variables for the local stack's moto servers, from the runner's ports ("moto", "moto-dynamodb")."""
    dynamodb = f"http://127.0.0.1:{ports['moto-dynamodb']}"
    return {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{ports['moto']}"} | dict.fromkeys(
        DYNAMODB_ENDPOINT_VARIABLES, dynamodb
    )


def aws_endpoint(environ: Mapping[str, str], service: str) -> str | None:
    """Where `environ` sends `service` ("dynamodb", "sqs", ...) as boto3 would: its own endpoint variable, else
    AWS_ENDPOINT_URL, else None (AWS itself)."""
    variable = f"AWS_ENDPOINT_URL_{SERVICE_IDS.get(service, service).upper()}"
    return environ.get(variable) or environ.get("AWS_ENDPOINT_URL") or None


def create_messages_like_table(dynamodb: Any, name: str = "messages") -> None:
    """A table keyed as the template's messages table (string `pk` and `sk`, on demand), without the rest of the
    template: for the tests and benches that race writers on one table through a moto server of their own."""
    dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
    )


@dataclass
class Provisioned:
    """Physical names of what the template declares, by logical id."""

    table_names: dict[str, str] = field(default_factory=dict)
    table_arns: dict[str, str] = field(default_factory=dict)
    queue_urls: dict[str, str] = field(default_factory=dict)
    queue_arns: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Provisioned:
        """What `to_json` wrote; ValueError for anything else (a mapping of four name -> string maps)."""
        try:
            data = json.loads(text)
            names = {f.name for f in fields(cls)}
            if not isinstance(data, dict) or set(data) != names:
                raise ValueError(f"expected an object with {sorted(names)}")
            for key, value in data.items():
                if not isinstance(value, dict) or not all(isinstance(v, str) for v in [*value, *value.values()]):
                    raise ValueError(f"{key}: expected an object of strings")
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc}") from exc
        return cls(**data)


def physical_name(logical_id: str, stack_name: str, declared: Any, context: ResolveContext) -> str:
    """The template's own name when it sets one, else `<stack>-<LogicalId>` (CloudFormation adds a random
    suffix; locally a stable name lets a restarted stack find its resources again)."""
    return str(resolve(declared, context)) if declared is not None else f"{stack_name}-{logical_id}"


def queue_name(queue: QueueSpec, context: ResolveContext) -> str:
    name = physical_name(queue.logical_id, context.stack_name, queue.queue_name, context)
    return name + ".fifo" if queue.fifo and not name.endswith(".fifo") else name


def named(template: Template, context: ResolveContext) -> Provisioned:
    """The names, ARNs and URLs AWS would give the template's tables and queues in `context`'s region and account,
    without an AWS call: for what needs a function's environment and no AWS at all (`bench/_cold_env.py`)."""
    where = f"{context.region}:{context.account_id}"
    provisioned = Provisioned()
    for table in template.tables.values():
        name = physical_name(table.logical_id, context.stack_name, table.table_name, context)
        provisioned.table_names[table.logical_id] = name
        provisioned.table_arns[table.logical_id] = f"arn:aws:dynamodb:{where}:table/{name}"
    for queue in template.queues.values():
        name = queue_name(queue, context)
        provisioned.queue_urls[queue.logical_id] = (
            f"https://sqs.{context.region}.amazonaws.com/{context.account_id}/{name}"
        )
        provisioned.queue_arns[queue.logical_id] = f"arn:aws:sqs:{where}:{name}"
    return provisioned


@functools.cache
def _service_data(data_path: str | None) -> botocore.loaders.Loader:
    """botocore's loader of service models for one `data_path` (AWS_DATA_PATH), shared by every session `provision`
    makes: a new session reads the models' JSON again (~0.1 s of CPU for DynamoDB and SQS), and a moto-backed test
    provisions once per test."""
    return botocore.loaders.create_loader(data_path)


def _session(region: str) -> boto3.session.Session:
    """A new session, as `boto3.session.Session(region_name=region)` makes, on the shared loader."""
    core = botocore.session.Session()
    loader = _service_data(core.get_config_variable("data_path"))
    core.register_component("data_loader", loader)
    session = boto3.session.Session(botocore_session=core, region_name=region)
    loader.search_paths[:] = dict.fromkeys(loader.search_paths)  # boto3 adds its data directory once per session
    return session


def provision(template: Template, context: ResolveContext, environ: Mapping[str, str]) -> Provisioned:
    """Create (or find) every table and queue of the template, on the endpoints `environ` names (`aws_endpoint`).
    `context` needs only parameters and pseudo parameters: names may use them, nothing else."""
    session = _session(context.region)
    dynamodb: Any = session.client("dynamodb", endpoint_url=aws_endpoint(environ, "dynamodb"))
    sqs: Any = session.client("sqs", endpoint_url=aws_endpoint(environ, "sqs"))
    provisioned = Provisioned()
    for table in template.tables.values():
        name = physical_name(table.logical_id, context.stack_name, table.table_name, context)
        provisioned.table_names[table.logical_id] = name
        provisioned.table_arns[table.logical_id] = _ensure_table(dynamodb, name, table)
    # Dead-letter queues must exist before a RedrivePolicy can name them: create every queue plain, then set
    # each queue's attributes (SetQueueAttributes is idempotent, CreateQueue with changed attributes is not).
    for queue in template.queues.values():
        url = _ensure_queue(sqs, queue_name(queue, context), queue)
        provisioned.queue_urls[queue.logical_id] = url
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        provisioned.queue_arns[queue.logical_id] = arn
    for queue in template.queues.values():
        sqs.set_queue_attributes(
            QueueUrl=provisioned.queue_urls[queue.logical_id], Attributes=_queue_attributes(queue, provisioned)
        )
    return provisioned


def _ensure_table(dynamodb: Any, name: str, table: TableSpec) -> str:
    try:
        return str(dynamodb.describe_table(TableName=name)["Table"]["TableArn"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
    arguments: dict[str, Any] = {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": k.attribute_name, "KeyType": k.key_type} for k in table.key_schema],
        "AttributeDefinitions": [
            {"AttributeName": n, "AttributeType": t} for n, t in table.attribute_definitions.items()
        ],
    }
    if table.stream_view_type:
        arguments["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": table.stream_view_type}
    if table.global_secondary_indexes:
        arguments["GlobalSecondaryIndexes"] = [
            {
                "IndexName": index.name,
                "KeySchema": [{"AttributeName": k.attribute_name, "KeyType": k.key_type} for k in index.key_schema],
                "Projection": {"ProjectionType": index.projection_type}
                | ({"NonKeyAttributes": list(index.non_key_attributes)} if index.non_key_attributes else {}),
            }
            for index in table.global_secondary_indexes
        ]
    try:
        arn = str(dynamodb.create_table(**arguments)["TableDescription"]["TableArn"])
    except ClientError as exc:  # another process of the stack created it a moment ago
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
        return str(dynamodb.describe_table(TableName=name)["Table"]["TableArn"])
    if table.ttl_attribute:
        dynamodb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"AttributeName": table.ttl_attribute, "Enabled": True}
        )
    log.info("created table %s", name)
    return arn


def _ensure_queue(sqs: Any, name: str, queue: QueueSpec) -> str:
    try:
        return str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            raise
    attributes = {"FifoQueue": "true"} if queue.fifo else {}
    log.info("creating queue %s", name)
    return str(sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])


def _queue_attributes(queue: QueueSpec, provisioned: Provisioned) -> dict[str, str]:
    attributes = {
        "VisibilityTimeout": str(queue.visibility_timeout),
        "MessageRetentionPeriod": str(queue.message_retention_period),
    }
    if queue.redrive:
        attributes["RedrivePolicy"] = json.dumps(
            {
                "deadLetterTargetArn": provisioned.queue_arns[queue.redrive.dead_letter_queue_id],
                "maxReceiveCount": queue.redrive.max_receive_count,
            }
        )
    return attributes
