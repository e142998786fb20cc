"""What each provider answers to a send that it accepts in full: the bytes both sides of a benchmark get back.

Our clients and the official SDKs read the same answer, so parsing it is timed on both sides. The shapes are the
local emulators' (`local/emulators/`), which follow the providers' documented examples; every recipient is
accepted, so every recipient's result is read.

Standard library only: a cold-start child imports this before the handler it times, and must not preload
anything the handler would import itself.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

TYPE_CHECKING = False  # not from typing: it is not loaded at start, and this preamble must not load it

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

JSON = "application/json"
HUAWEI_SEND_PATH = "/sms/batchSendDiffSms/v1"


def aliyun_single(wire_number: str, sender_id: str | None = None) -> bytes:
    """SendMessageToGlobe accepted: `wire_number` is the number as sent (digits, no "+")."""
    answer: dict[str, object] = {
        "ResponseCode": "OK",
        "ResponseDescription": "OK",
        "RequestId": "F655A8D5-B967-440B-8683-DAD6FF8DE990",
        "MessageId": f"1008030{wire_number[-8:]}",
        "Segments": "1",
        "To": wire_number,
        "NumberDetail": {"Carrier": "CMI", "Region": "HK", "Country": "Hong Kong"},
    }
    if sender_id:
        answer["From"] = sender_id
    return json.dumps(answer).encode()


def aliyun_batch(wire_numbers: Sequence[str], sender_id: str | None = None) -> bytes:
    """BatchSendMessageToGlobe accepted for every number: one MessageId each, in the order of `To`."""
    answer: dict[str, object] = {
        "ResponseCode": "OK",
        "ResponseDescription": "OK",
        "RequestId": "A5E1C1B2-7D3F-4E5A-9C2B-1F0E9D8C7B6A",
        "SuccessCount": str(len(wire_numbers)),
        "MessageIdList": json.dumps([f"1008030{i:09d}" for i in range(len(wire_numbers))]),
        "FailedList": "[]",
    }
    if sender_id:
        answer["From"] = sender_id
    return json.dumps(answer).encode()


def tencent(recipients: Sequence[tuple[str, str | None]]) -> bytes:
    """SendMultiGlobalSms with every (PhoneNumber, SessionContext) accepted."""
    statuses = [
        {
            "Code": "Ok",
            "Fee": 1,
            "IsoCode": "SG",
            "Message": "send success",
            "PhoneNumber": number,
            "SerialNo": f"5000:1045710669157053657849499{i:05d}",
            "SessionContext": context or "",
        }
        for i, (number, context) in enumerate(recipients)
    ]
    return json.dumps(
        {"Response": {"SendMultiStatusSet": statuses, "RequestId": "a0aabda6-cf91-4f3e-a81f-9198114a2279"}}
    ).encode()


def huawei(numbers: Sequence[str], sender: str) -> bytes:
    """batchSendDiffSms with every number accepted (`numbers` in the order of the body's `smsContent`)."""
    results = [
        {
            "originTo": number,
            "createTime": "2026-11-26T10:00:00Z",
            "from": sender,
            "smsMsgId": f"5ef3e2f9-5f4b-4a4c-9d1c-3b0b6c2a8e41_{i}",
            "status": "000000",
            "countryId": "SG",
            "total": 1,
        }
        for i, number in enumerate(numbers)
    ]
    return json.dumps({"code": "000000", "description": "Success", "result": results}).encode()


def answer_request(url: str, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes]:
    """The answer to any request a handler sends, read off the request itself: a provider's send (told apart by
    its action header or path) gets that provider's full acceptance, anything else (a customer's webhook
    endpoint) an empty 200. For cold starts, where a handler sends a request or two; benchmarks of big sends
    build their answer beforehand instead, so that reading the request is not timed as the client's work."""
    parts = urlsplit(url)
    lowered = {name.lower(): value for name, value in headers.items()}
    aliyun_action = lowered.get("x-acs-action")
    if aliyun_action:
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        if lowered.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            params.update(parse_qsl(body.decode(), keep_blank_values=True))
        if aliyun_action == "SendMessageToGlobe":
            return 200, aliyun_single(params["To"], params.get("From"))
        return 200, aliyun_batch(json.loads(params["To"]), params.get("From"))
    if "x-tc-action" in lowered:
        items = json.loads(body)["MultiSmsInfoSet"]
        return 200, tencent([(item["PhoneNumber"], item.get("SessionContext")) for item in items])
    if parts.path.endswith(HUAWEI_SEND_PATH):
        sent = json.loads(body)
        return 200, huawei([number for entry in sent["smsContent"] for number in entry["to"]], sent["from"])
    return 200, b""
