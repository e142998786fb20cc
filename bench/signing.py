"""Figure 1: building and signing a provider request, our client against the official SDK, per provider.

Each side sends the same messages (a 200-item Tencent batch, a 500-number Huawei batch, a 1,000-number Alibaba
batch, one Alibaba single send) through its real public call, and the network is cut at the transport, where no
answer comes: ours is the client's `send` on an `httpx.Client` whose `httpx.MockTransport` raises a private
exception (`_TransportCut`) as soon as it is handed the request; the SDK's is its operation call with `requests`'
`HTTPAdapter.send` raising the same (`_sig_sdks`). The figure (value, reference, ratio) times one call from the
caller's data to the request reaching the transport: validating, serialising, signing, preparing the HTTP request
and going through the HTTP library's client down to its transport, then the exception's way back out (ours lets it
through; the SDKs wrap it in their own exception types, which is their cost). Nothing is read back. Every timed call
is checked to reach the transport exactly once (a call refused by its own validation, or sent twice, stops the
run), and once per side and scenario the request handed over is checked to be complete: signed (`Authorization`),
and carrying every recipient (read back as the emulators read a request, `_sig_answers.answer_request`, it gets
the scenario's answer).

`detail["whole_call"]`, for information only: the same calls with the transport answering at once with the
provider's acceptance of every recipient (`_sig_answers`), timed to the parsed answer (all of the above, plus the
HTTP library's response handling and reading the answer), each side checked to read every recipient as accepted.

Messages differ from one recipient to the next (own parameters, own text), so no shortcut for repeated content
helps our side. Huawei signs with SDK-HMAC-SHA256 here, the one scheme the SDK speaks (our default, X-WSSE, hashes
no body and is cheaper). Samples alternate between the two sides and are CPU time of this process; a figure is
requests per second from the median, ratio = ours / SDK (the faster of the SDK's ways where it has two).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import httpx
from pydantic import SecretStr

from bench import _sig_answers as answers
from bench import _sig_sdks as sdks
from bench.figures import Figure, interleaved_medians
from globesms.cookieless import CookielessClient
from globesms.models.outbound import MessageType, OutboundSms, SendOutcome
from globesms.providers.aliyun import AliyunClient, AliyunSettings, batch_task_id
from globesms.providers.huawei import AuthMode, HuaweiClient, HuaweiSettings
from globesms.providers.tencent import TencentSettings, TencentSmsClient

GOAL = 3.0
BATCH_ID = "01JDBENCHSIGNING0000000000"
# Credentials of no account: nothing leaves the process.
TENCENT_KEYS = (
    "AKIDbenchmark0000000000000000000000",
    "bench-secret-key-0000000000000000",
    "ap-singapore",
    "1400006666",
)
HUAWEI_KEYS = ("benchAppKey0000000000000000", "bench-app-secret-000000000000000")
HUAWEI_SENDER = "isms100000001"
ALIYUN_KEYS = ("LTAI5tBenchmarkKey00000000", "bench-access-key-secret-000000000000")
# Number prefixes of several countries (Singapore, Hong Kong, Malaysia, UK, UAE, Indonesia), 8 more digits each.
PREFIXES = ("+6591", "+85251", "+60123", "+447911", "+97150", "+62812")


def numbers(count: int) -> list[str]:
    return [f"{PREFIXES[i % len(PREFIXES)]}{i:07d}" for i in range(count)]


def message_ids(count: int) -> list[str]:
    return [f"{BATCH_ID}.{i:05d}" for i in range(count)]


def template_batch(count: int, template_id: str) -> list[OutboundSms]:
    """A one-time code for each recipient: one template, parameters of its own."""
    return [
        OutboundSms(
            message_id, to, MessageType.OTP, template_id=template_id, template_params=(f"{i * 7919 % 10**6:06d}", "5")
        )
        for i, (message_id, to) in enumerate(zip(message_ids(count), numbers(count), strict=True))
    ]


def text_batch(count: int) -> list[OutboundSms]:
    """A notice for each recipient with its own text; every third one is not ASCII (escaped on the wire)."""
    texts = (
        "Parcel {i} is out for delivery today.",
        "Colis n°{i} livré demain, créneau 9h à 12h.",
        "您的包裹 {i} 已发货",
    )
    return [
        OutboundSms(message_id, to, MessageType.NOTIFY, text=texts[i % 3].format(i=i), sender_id="Acme")
        for i, (message_id, to) in enumerate(zip(message_ids(count), numbers(count), strict=True))
    ]


def mock_http(answer: bytes) -> httpx.Client:
    """The client ours send through when deployed (`CookielessClient`), its transport answering `answer` at once."""

    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=answer, headers={"content-type": answers.JSON})

    return CookielessClient(transport=httpx.MockTransport(respond))


class _TransportCut(Exception):
    """Raised by either side's transport when it is handed a request."""


@dataclass
class Cut:
    """The transport of the figure's calls, on both sides: keeps the request it is handed, counts it, raises
    `_TransportCut`."""

    reached: int = 0
    last: Any = None

    def __call__(self, request: Any) -> NoReturn:
        self.reached += 1
        self.last = request
        raise _TransportCut


def cut_http(cut: Cut) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(cut))


@dataclass
class Scenario:
    """One request, sent by our client and by the SDK (`sdk`, or each of several ways of using it). `ours` and
    `sdk` return how many recipients their parsed answer accepted (with an answering transport); `ours_cut` is
    the same call of our client on the cut transport, `sdk` being cut by `_sig_sdks.cut_transport`."""

    id: str
    title: str
    recipients: int
    sdk_package: str
    answer: bytes
    ours: Callable[[], int]
    ours_cut: Callable[[], int]
    sdk: dict[str, Callable[[], int]]
    notes: dict[str, object] = field(default_factory=dict)


def _accepted(outcomes: Sequence[SendOutcome]) -> int:
    return sum(1 for outcome in outcomes if outcome.provider_message_id and outcome.error is None)


def _ours(
    make: Callable[[httpx.Client], Callable[[], int]], answer: bytes, cut: Cut
) -> tuple[Callable[[], int], Callable[[], int]]:
    """Our call (`make(http)`) on a transport answering `answer`, and on the cut one."""
    return make(mock_http(answer)), make(cut_http(cut))


def scenarios(cut: Cut) -> list[Scenario]:
    tencent = template_batch(200, "1234567")
    tencent_settings = TencentSettings(
        endpoint=f"https://{sdks.TENCENT_HOST}",
        secret_id=TENCENT_KEYS[0],
        secret_key=SecretStr(TENCENT_KEYS[1]),
        region=TENCENT_KEYS[2],
        sdk_app_id=TENCENT_KEYS[3],
    )

    def tencent_call(http: httpx.Client) -> Callable[[], int]:
        client = TencentSmsClient(tencent_settings, http=http)
        return lambda: _accepted(client.send(tencent))

    tencent_answer = answers.tencent([(m.to, m.message_id) for m in tencent])
    tencent_sdk = sdks.tencent_sender(*TENCENT_KEYS)

    huawei = template_batch(500, "8ff55eac1d0b478ab3c06c3c6a492300")
    huawei_settings = HuaweiSettings(
        endpoint=sdks.HUAWEI_ENDPOINT,
        app_key=HUAWEI_KEYS[0],
        app_secret=SecretStr(HUAWEI_KEYS[1]),
        sender=HUAWEI_SENDER,
        auth=AuthMode.AKSK,
    )

    def huawei_call(http: httpx.Client) -> Callable[[], int]:
        client = HuaweiClient(huawei_settings, http=http)
        return lambda: _accepted(client.send(huawei))

    huawei_answer = answers.huawei([m.to for m in huawei], HUAWEI_SENDER)
    huawei_sdk = sdks.huawei_sender(*HUAWEI_KEYS, HUAWEI_SENDER)

    aliyun_settings = AliyunSettings(
        endpoint=f"https://{sdks.ALIYUN_HOST}", access_key_id=ALIYUN_KEYS[0], access_key_secret=ALIYUN_KEYS[1]
    )
    aliyun_sdk = sdks.AliyunSdk(*ALIYUN_KEYS)
    batch = text_batch(1000)
    task_id = batch_task_id(batch[0].message_id, len(batch))
    batch_answer = answers.aliyun_batch([m.to[1:] for m in batch], "Acme")
    single = OutboundSms(
        f"{BATCH_ID}.00000", "+85251234567", MessageType.OTP, text="Your code is 123456", sender_id="Acme"
    )
    single_answer = answers.aliyun_single(single.to[1:], "Acme")

    def aliyun_call(messages: list[OutboundSms]) -> Callable[[httpx.Client], Callable[[], int]]:
        def make(http: httpx.Client) -> Callable[[], int]:
            client = AliyunClient(aliyun_settings, http=http)
            return lambda: _accepted(client.send(messages))

        return make

    tencent_ours, tencent_ours_cut = _ours(tencent_call, tencent_answer, cut)
    huawei_ours, huawei_ours_cut = _ours(huawei_call, huawei_answer, cut)
    batch_ours, batch_ours_cut = _ours(aliyun_call(batch), batch_answer, cut)
    single_ours, single_ours_cut = _ours(aliyun_call([single]), single_answer, cut)
    return [
        Scenario(
            id="signing.tencent",
            title="Tencent SendMultiGlobalSms, 200 items",
            recipients=len(tencent),
            sdk_package="tencentcloud-sdk-python-sms",
            answer=tencent_answer,
            ours=tencent_ours,
            ours_cut=tencent_ours_cut,
            sdk={"SmsClient.SendMultiGlobalSms": lambda: sdks.tencent_statuses(tencent_sdk(tencent))},
        ),
        Scenario(
            id="signing.huawei",
            title="Huawei batchSendDiffSms, 500 numbers (SDK-HMAC-SHA256)",
            recipients=len(huawei),
            sdk_package="huaweicloudsdksmsapi",
            answer=huawei_answer,
            ours=huawei_ours,
            ours_cut=huawei_ours_cut,
            sdk={"SMSApiClient.batch_send_diff_sms": lambda: sdks.huawei_results(huawei_sdk(huawei))},
        ),
        Scenario(
            id="signing.aliyun_batch",
            title="Alibaba BatchSendMessageToGlobe, 1,000 numbers",
            recipients=len(batch),
            sdk_package="alibabacloud-dysmsapi20180501",
            answer=batch_answer,
            ours=batch_ours,
            ours_cut=batch_ours_cut,
            sdk={
                # The operation method puts the parameters in the query string (no server takes a URL that long);
                # call_api with a form body is the request our client sends. The faster one is the reference.
                "batch_send_message_to_globe_with_options (query string)": lambda: sdks.aliyun_batch_ids(
                    aliyun_sdk.send_batch(batch, task_id)
                ),
                "call_api (form body, as ours)": lambda: sdks.aliyun_batch_ids(
                    aliyun_sdk.send_batch_in_body(batch, task_id)
                ),
            },
        ),
        Scenario(
            id="signing.aliyun_single",
            title="Alibaba SendMessageToGlobe, one number",
            recipients=1,
            sdk_package="alibabacloud-dysmsapi20180501",
            answer=single_answer,
            ours=single_ours,
            ours_cut=single_ours_cut,
            sdk={"send_message_to_globe_with_options": lambda: sdks.aliyun_single_id(aliyun_sdk.send_one(single))},
        ),
    ]


def _checked(run: Callable[[], int], expected: int, what: str) -> Callable[[], int]:
    """`run`, after checking once that it reads every recipient as accepted: a side that failed early (a refused
    request, an unread answer) would look fast."""
    accepted = run()
    if accepted != expected:
        raise RuntimeError(f"{what}: {accepted} of {expected} recipients accepted; the comparison would be void")
    return run


def _complete(request: Any, answer: bytes, what: str) -> None:
    """Checks that `request` (an `httpx.Request` or a `requests.PreparedRequest`) is signed and carries every
    recipient: read as the emulators read a request, it gets the scenario's `answer`."""
    if isinstance(request, httpx.Request):
        url, headers, body = str(request.url), request.headers, request.content
    else:
        url, headers, body = request.url, request.headers, request.body or b""
        body = body.encode() if isinstance(body, str) else body
    if "authorization" not in headers:  # both header mappings ignore case
        raise RuntimeError(f"{what}: the request reached the transport unsigned")
    if answers.answer_request(url, dict(headers.items()), body)[1] != answer:
        raise RuntimeError(f"{what}: the request reached the transport without every recipient")


def _to_the_cut(
    call: Callable[[], object], cut: Cut, answer: bytes, what: str, catch: tuple[type[Exception], ...]
) -> tuple[Callable[[], None], str]:
    """`call` ended by the cut transport, and the exception it ended with (`_TransportCut`, or an SDK's own). Each
    call is checked to reach the transport exactly once: one that stopped short (its own validation refusing the
    request) or went out twice (a retry) would make the comparison void. The first call's request is checked to be
    complete."""

    def run() -> None:
        expected = cut.reached + 1
        try:
            call()
        except catch as exc:
            if cut.reached != expected:
                raise RuntimeError(f"{what}: {type(exc).__name__} after {cut.reached - expected + 1} requests") from exc
            return
        if cut.reached != expected:
            raise RuntimeError(f"{what}: the call returned after {cut.reached - expected + 1} requests")

    expected = cut.reached + 1
    try:
        call()
        ended = "returned"
    except catch as exc:
        ended = type(exc).__name__
    if cut.reached != expected:
        raise RuntimeError(f"{what}: ended ({ended}) after {cut.reached - expected + 1} requests, not 1")
    _complete(cut.last, answer, what)
    return run, ended


def _rps(seconds: dict[str, float], sdk_names: Sequence[str]) -> tuple[float, float, str]:
    """Ours and the (fastest) SDK's requests per second, and which SDK call that is."""
    sdk_name = min(sdk_names, key=seconds.__getitem__)
    return 1 / seconds["ours"], 1 / seconds[sdk_name], sdk_name


def measure(quick: bool) -> list[Figure]:
    repeat, sample_seconds = (3, 0.01) if quick else (21, 0.1)
    cut = Cut()
    figures = []
    with sdks.cut_transport() as transport:
        for scenario in scenarios(cut):
            # The figure: building and signing, up to the cut transport.
            transport.cut = cut
            run, ended = _to_the_cut(scenario.ours_cut, cut, scenario.answer, "our client", (_TransportCut,))
            cut_runs: dict[str, Callable[[], Any]] = {"ours": run}
            raised = {"ours": ended}
            for name, call in scenario.sdk.items():
                cut_runs[name], raised[name] = _to_the_cut(call, cut, scenario.answer, name, (Exception,))
            seconds = interleaved_medians(cut_runs, repeat=repeat, sample_seconds=sample_seconds)
            ours_rps, sdk_rps, sdk_name = _rps(seconds, list(scenario.sdk))
            # For information: the whole call, to the parsed answer.
            transport.cut = None
            transport.answer = scenario.answer
            whole_runs: dict[str, Callable[[], Any]] = {
                "ours": _checked(scenario.ours, scenario.recipients, "our client")
            }
            for name, call in scenario.sdk.items():
                whole_runs[name] = _checked(call, scenario.recipients, name)
                _complete(transport.last(), scenario.answer, name)
            whole = interleaved_medians(whole_runs, repeat=repeat, sample_seconds=sample_seconds)
            whole_ours, whole_sdk, whole_sdk_name = _rps(whole, list(scenario.sdk))
            version = importlib.metadata.version(scenario.sdk_package)
            figures.append(
                Figure(
                    id=scenario.id,
                    title=f"Signing: {scenario.title}",
                    value=ours_rps,
                    unit="req/s",
                    reference=sdk_rps,
                    reference_label=f"official SDK, {scenario.sdk_package} {version}",
                    ratio=ours_rps / sdk_rps,
                    goal=f">= {GOAL:g}x the SDK's requests/s",
                    goal_op=">=",
                    goal_value=GOAL,
                    detail={
                        "recipients": scenario.recipients,
                        "timed": "building and signing the request, through the HTTP client up to its transport",
                        "sdk_call": sdk_name,
                        "seconds_per_request": {name: round(value, 7) for name, value in seconds.items()},
                        "cut": "ours: httpx.MockTransport raising; SDK: requests HTTPAdapter.send raising; no answer",
                        "call_ended_with": raised,
                        "samples_each": repeat,
                        "clock": "CPU time of the process (time.process_time), medians of interleaved samples",
                        "whole_call": {
                            "timed": "the same calls to the parsed answer: the transport answers at once, the same "
                            "bytes to both sides, accepting every recipient",
                            "ours_req_per_s": round(whole_ours, 1),
                            "sdk_req_per_s": round(whole_sdk, 1),
                            "ratio": round(whole_ours / whole_sdk, 2),
                            "sdk_call": whole_sdk_name,
                            "seconds_per_request": {name: round(value, 7) for name, value in whole.items()},
                        },
                    },
                )
            )
    return figures
