"""CPU per recipient of one handler path, beside its reference, in this fresh process (run by `bench.cpu`).

    python bench/_cpu_child.py '{"kind": "accept" | "dispatch", "handler": ".../app.py", "event": ".../event.json",
                                 "repeat": 9, "modules": [...], "result": ".../result.json"}'

The real handler serves the event again and again (after one untimed first call: steady state, not cold start)
against in-process fakes (`_cold_fakes`): AWS calls answered at once, provider calls answered with the provider's
acceptance of every recipient, built beforehand from the messages so that no request is read on the clock. Its
samples alternate with the reference's:
- accept (`send_api`, a request of many recipients): `phonenumbers` parsing each number, telling whether it is
  a valid mobile number and writing it in E.164 (parse, is_valid_number, number_type, format_number), the least
  any accept must do;
- dispatch (one pack): building and signing the same provider requests alone (`_sig_build`), and, for scale, the
  provider client's whole `send` (build, sign, HTTP client, reading the answer).
The result (median CPU seconds of each, recipients, peak RSS of the process) is written as JSON to `result`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# This checkout's package, not whichever one the interpreter has installed (the child's environment drops
# PYTHONPATH): the figure is of the code beside this script.
sys.path.insert(1, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "layers", "globesms"))

from bench import _cold_fakes, _sig_answers
from bench._cold_child import Context, peak_rss_kb
from bench.figures import interleaved_medians


def load_handler(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["app"] = module
    spec.loader.exec_module(module)
    return module


def accept_runs(event: dict[str, Any], handler: ModuleType) -> tuple[dict[str, Callable[[], object]], int]:
    import phonenumbers

    numbers = [n for spec in json.loads(event["body"])["messages"] for n in spec["to"]]
    fakes = _cold_fakes.install_fake_aws()

    def serve() -> dict[str, Any]:
        answer: dict[str, Any] = handler.lambda_handler(event, Context())
        if answer["statusCode"] != 202:
            raise RuntimeError(f"accept answered {answer['statusCode']}: {answer['body'][:500]}")
        return answer

    body = json.loads(serve()["body"])  # the first call, untimed: it also checks every recipient was accepted
    if (body["accepted"], body["rejected"]) != (len(numbers), 0):
        raise RuntimeError(f"accepted {body['accepted']}, rejected {body['rejected']} of {len(numbers)}")
    if not fakes["dynamodb"].calls or not fakes["sqs"].calls:
        raise RuntimeError("the accept wrote nothing: the comparison would be void")

    def parse_alone() -> None:
        for raw in numbers:
            number = phonenumbers.parse(raw, None)
            phonenumbers.is_valid_number(number)
            phonenumbers.number_type(number)
            phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    return {"handler": serve, "reference": parse_alone}, len(numbers)


def dispatch_runs(event: dict[str, Any], handler: ModuleType) -> tuple[dict[str, Callable[[], object]], int]:
    from bench._sig_build import build_and_sign
    from globesms.dispatch.sending import outbound_messages
    from globesms.models.outbound import ProviderName
    from globesms.models.packs import DispatchPack
    from globesms.providers import build_provider

    pack = DispatchPack.model_validate_json(event["Records"][0]["body"])
    messages = outbound_messages(pack)
    client = build_provider(ProviderName(pack.provider))  # the handler builds its own, the same way
    fakes = _cold_fakes.install_fake_aws()
    fakes["dynamodb"].record = True

    def serve() -> object:
        answer = handler.lambda_handler(event, Context())
        if answer.get("batchItemFailures"):
            raise RuntimeError(f"dispatch reported the pack failed: {answer}")
        return answer

    serve()  # the first call, untimed: it also checks every recipient was recorded as sent
    written = [
        item["PutRequest"]["Item"]
        for params in fakes["dynamodb"].recorded.get("batch_write_item", [])
        for items in params["RequestItems"].values()
        for item in items
    ]
    submitted = sum(1 for item in written if item.get("status", {}).get("S") == "SUBMITTED")
    if submitted != len(messages):
        raise RuntimeError(
            f"{submitted} of {len(messages)} recipients recorded SUBMITTED: the comparison would be void"
        )
    fakes["dynamodb"].record = False
    return {
        "handler": serve,
        "reference": lambda: build_and_sign(client, messages),
        "client_send": lambda: client.send(messages),
    }, len(messages)


def provider_answer(event: dict[str, Any]) -> bytes:
    """The provider's acceptance of every recipient of the event's pack, built before the clock starts (from the
    pack's JSON alone: the handler's modules are not imported yet)."""
    pack = json.loads(event["Records"][0]["body"])
    recipients = pack["recipients"]
    contents = pack["contents"]
    if pack["provider"] == "aliyun":
        return _sig_answers.aliyun_batch([r["to"][1:] for r in recipients], contents[0].get("sender_id"))
    if pack["provider"] == "tencent":
        return _sig_answers.tencent([(r["to"], r["id"]) for r in recipients])
    return _sig_answers.huawei([r["to"] for r in recipients], os.environ["GLOBESMS_HUAWEI_SENDER"])


def main() -> None:
    config = json.loads(sys.argv[1])
    _cold_fakes.only_modules(config["modules"])
    with open(config["event"]) as source:
        event = json.load(source)
    if config["kind"] == "dispatch":
        answer = provider_answer(event)
        _cold_fakes.patch_httpx_on_import(lambda _request: (200, answer))
    handler = load_handler(config["handler"])
    runs, recipients = (accept_runs if config["kind"] == "accept" else dispatch_runs)(event, handler)
    seconds = interleaved_medians(runs, repeat=config["repeat"], sample_seconds=config.get("sample_seconds", 0.05))
    result = {
        "seconds": seconds,
        "recipients": recipients,
        "peak_rss_kb": peak_rss_kb(),
    }
    with open(config["result"], "w") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main()
