"""`TemplateStore` on the template table (template.yaml `TemplatesTable`).

The whole registry is one partition, `pk = "registry"`: one Query reads it, in id order. Each template is an item
`sk = <logical id>` holding its versions as JSON (`doc`) and `updated_at`; the item `sk = "#seeded"` (no logical id
contains `#`) says the shipped templates were copied in, so the table, not the file, is the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import ClientError

from globesms.aws import clients
from globesms.ports import MAX_SEED_TEMPLATES, StoredTemplate, StoredTemplates

PARTITION = "registry"
SEEDED_SK = "#seeded"


class SeedTooLarge(ValueError):
    """Never in a deployment: a shipped file of more templates is refused when it loads (routing/templates.py)."""


def _key(sk: str) -> dict[str, Any]:
    return {"pk": {"S": PARTITION}, "sk": {"S": sk}}


def _item(template: StoredTemplate) -> dict[str, Any]:
    return {**_key(template.template_id), "doc": {"S": template.document}, "updated_at": {"S": template.updated_at}}


class DynamoDBTemplateStore:
    def __init__(self, table_name: str, client_factory: Callable[[], Any] = clients.dynamodb) -> None:
        self._table = table_name
        self._client = client_factory

    def load(self) -> StoredTemplates:
        pages = (
            self._client()
            .get_paginator("query")
            .paginate(
                TableName=self._table,
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": PARTITION}},
                ConsistentRead=True,
            )
        )
        seeded, templates = False, []
        for page in pages:
            for item in page.get("Items", []):
                sk = item["sk"]["S"]
                if sk == SEEDED_SK:
                    seeded = True
                else:
                    templates.append(StoredTemplate(sk, item["doc"]["S"], item["updated_at"]["S"]))
        return StoredTemplates(seeded=seeded, templates=tuple(templates))

    def seed(self, templates: Sequence[StoredTemplate]) -> None:
        if len(templates) > MAX_SEED_TEMPLATES:
            raise SeedTooLarge(
                f"{len(templates)} shipped templates; the seed copies at most {MAX_SEED_TEMPLATES} at once"
            )
        # One transaction: the marker only if absent, so of two first changes at once one seeds and the other
        # finds it done (and a template deleted right after the seed is never written back by a late seed).
        writes: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": {**_key(SEEDED_SK), "updated_at": {"S": templates[0].updated_at if templates else ""}},
                    "ConditionExpression": "attribute_not_exists(sk)",
                }
            },
            *({"Put": {"TableName": self._table, "Item": _item(template)}} for template in templates),
        ]
        try:
            self._client().transact_write_items(TransactItems=writes)
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            if (
                exc.response["Error"]["Code"] == "TransactionCanceledException"
                and reasons[:1]
                and (reasons[0].get("Code") == "ConditionalCheckFailed")
            ):
                return  # seeded by another request already
            raise

    def put(self, template: StoredTemplate) -> bool:
        response = self._client().put_item(TableName=self._table, Item=_item(template), ReturnValues="ALL_OLD")
        return not response.get("Attributes")

    def delete(self, template_id: str) -> bool:
        response = self._client().delete_item(TableName=self._table, Key=_key(template_id), ReturnValues="ALL_OLD")
        return bool(response.get("Attributes"))
