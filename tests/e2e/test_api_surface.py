"""End to end through the local stack: the API's document and docs page, a template stored through the API and
sent with at once, and the message found again by its client_ref and by its number (docs/api.md)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e

NUMBER = "+85251234567"
# The shipped example's provider ids (the local emulators accept them), under a logical id of this test's own.
VERSIONS: dict[str, Any] = {
    "aliyun": {"text": "Your code is {code}. It expires in {minutes} minutes."},
    "tencent": {"id": "1234567", "params": ["code", "minutes"]},
    "huawei": {"id": "8ff55eac1d0b478ab3c06c3c6a492300", "params": ["code", "minutes"]},
}


def test_the_document_and_its_page_are_served_without_a_key(local_stack: RunningStack) -> None:
    document = httpx.get(f"{local_stack.api_url}/v1/openapi.json", timeout=30)
    assert document.status_code == 200, document.text
    assert {"/v1/messages", "/v1/templates", "/v1/templates/{template_id}"} <= set(document.json()["paths"])
    page = httpx.get(f"{local_stack.api_url}/v1/docs", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "SwaggerUIBundle" in page.text and json.dumps(document.json()["info"]["title"]) in page.text


def test_a_template_stored_through_the_api_is_sent_with_and_the_message_found_by_ref_and_number(
    local_stack: RunningStack,
) -> None:
    api = local_stack.api
    stored = api.put("/v1/templates/e2e-code", json=VERSIONS)
    assert stored.status_code == 201, stored.text

    client_ref = f"e2e-{uuid.uuid4()}"
    body = {"to": NUMBER, "template": {"id": "e2e-code", "params": {"code": "123456", "minutes": 5}}}
    sent = api.post("/v1/messages", json={**body, "client_ref": client_ref})
    assert sent.status_code == 202, sent.text
    (message,) = sent.json()["messages"]
    # Registered: routed as the registry says (Tencent first for +852), not as a provider's own id (Huawei).
    assert message["provider"] == "tencent"
    assert (message["segments"], message["encoding"]) == (None, None)  # Tencent's text is Tencent's

    def submitted() -> dict[str, Any] | None:
        page = api.get("/v1/messages", params={"client_ref": client_ref})
        assert page.status_code == 200, page.text
        found = page.json()["messages"]
        return found[0] if found and found[0]["status"] == "SUBMITTED" else None

    found = local_stack.wait_for(f"message {message['id']} SUBMITTED", submitted)
    assert (found["id"], found["provider"]) == (message["id"], "tencent")
    by_number = api.get("/v1/messages", params={"to": "+852 5123 4567", "limit": 100})
    assert by_number.status_code == 200, by_number.text
    assert message["id"] in [m["id"] for m in by_number.json()["messages"]]

    assert api.delete("/v1/templates/e2e-code").status_code == 204
    assert api.get("/v1/templates/e2e-code").status_code == 404


def test_a_text_answer_gives_segments_and_encoding(local_stack: RunningStack) -> None:
    sent = local_stack.api.post("/v1/messages", json={"to": NUMBER, "text": "你好" * 40})
    assert sent.status_code == 202, sent.text
    (message,) = sent.json()["messages"]
    assert (message["provider"], message["segments"], message["encoding"]) == ("aliyun", 2, "UCS-2")
