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

#: SQS takes 1 MiB per message and per SendMessageBatch call (262,144 bytes until August 2025; the template's queues
#: keep SQS's default MaximumMessageSize, 1 MiB, as moto's do). Packs stay far under it (PACK_BYTES_BUDGET), so a
#: call carries up to ten of them. Measured on 10,000 recipients (`bench` aws_cost, 2026-12-07): accept's
#: SendMessageBatch calls 7 -> 4 and its billed 64 KiB units 23 -> 21 against calls cut at 262,144 bytes.
SQS_MESSAGE_BYTES = 1_048_576
PACK_BYTES_BUDGET = 200_000

#: Alibaba OTP messages go one number per call (BatchSendMessageToGlobe takes NOTIFY and MKT only), so a pack of them
#: is that many sequential calls: 50 keep a dispatcher well inside its 30 s timeout even at slow provider latency.
ALIYUN_SINGLE_SENDS_PER_PACK = 50
