"""Documented per-call limits of the providers (their API references; docs/providers.md has the table)."""

from __future__ import annotations

from globesms.models.outbound import ProviderName

#: Recipients per provider call: Alibaba BatchSendMessageToGlobe 1,000; Tencent SendMultiGlobalSms 200;
#: Huawei batchSendDiffSms 500 numbers in all (more fails the whole call).
RECIPIENTS_PER_CALL: dict[ProviderName, int] = {
    ProviderName.ALIYUN: 1_000,
    ProviderName.TENCENT: 200,
    ProviderName.HUAWEI: 500,
}

#: The most bytes a SendMessageBatch call of packs, webhook events or releases carries, and a pack's ceiling with
#: room for its envelope. SQS took 262,144 bytes per message and per call until August 2025 and takes 1 MiB since
#: (the template's queues keep the default, 1 MiB; moto too). Kept at the old limit on purpose: SQS bills every
#: 64 KiB of a request as one request, so larger calls would cost the same, and a queue created before the change
#: (or set lower) still takes them. Measured, 1 MiB calls would save 3 SendMessageBatch calls of 10,000
#: recipients at accept (7 -> 4; `bench` aws_cost, 2026-12-07), and not one billed request.
SQS_MESSAGE_BYTES = 262_144
PACK_BYTES_BUDGET = 200_000

#: Alibaba OTP messages go one number per call (BatchSendMessageToGlobe takes NOTIFY and MKT only), so a pack of them
#: is that many sequential calls: 50 keep a dispatcher well inside its 30 s timeout even at slow provider latency.
ALIYUN_SINGLE_SENDS_PER_PACK = 50
