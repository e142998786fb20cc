"""DynamoDBTemplateStore on moto's TemplatesTable (created from template.yaml)."""

from __future__ import annotations

from globesms.aws.dynamodb_templates import DynamoDBTemplateStore
from globesms.ports import MAX_SEED_TEMPLATES, StoredTemplate, StoredTemplates

A = StoredTemplate("alpha", '{"huawei": {"id": "h1"}}', "2026-12-04T10:00:00.000000Z")
B = StoredTemplate("beta", '{"huawei": {"id": "h2"}}', "2026-12-04T10:00:00.000000Z")


def store_of(stack) -> DynamoDBTemplateStore:  # type: ignore[no-untyped-def]
    return DynamoDBTemplateStore(stack.deployed.context.refs["TemplatesTable"])


def test_an_unseeded_table_says_so_and_a_seed_happens_once(stack) -> None:  # type: ignore[no-untyped-def]
    store = store_of(stack)
    assert store.load() == StoredTemplates(seeded=False)
    store.seed([A, B])
    assert store.load() == StoredTemplates(seeded=True, templates=(A, B))
    # A template deleted after the seed is not written back by a second (late, concurrent) seed.
    assert store.delete("alpha")
    store.seed([A, B])
    assert store.load() == StoredTemplates(seeded=True, templates=(B,))


def test_the_largest_shipped_file_seeds_in_one_transaction(stack) -> None:  # type: ignore[no-untyped-def]
    """What routing/templates.py lets the shipped file hold, the store takes in one seed."""
    store = store_of(stack)
    many = [StoredTemplate(f"tpl-{i:02d}", '{"huawei": {"id": "h1"}}', "t") for i in range(MAX_SEED_TEMPLATES)]
    store.seed(many)
    assert store.load() == StoredTemplates(seeded=True, templates=tuple(many))


def test_put_says_whether_the_template_is_new_and_delete_whether_there_was_one(stack) -> None:  # type: ignore[no-untyped-def]
    store = store_of(stack)
    assert store.put(A) is True
    assert store.put(StoredTemplate("alpha", '{"huawei": {"id": "h3"}}', "t2")) is False
    assert store.load().templates == (StoredTemplate("alpha", '{"huawei": {"id": "h3"}}', "t2"),)
    assert store.delete("alpha") is True
    assert store.delete("alpha") is False
