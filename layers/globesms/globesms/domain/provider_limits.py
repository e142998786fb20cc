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

#: SQS accepts 262,144 bytes per message (and per SendMessageBatch call); packs stay well under it so the
#: envelope and attributes always fit.
SQS_MESSAGE_BYTES = 262_144
PACK_BYTES_BUDGET = 200_000

#: Alibaba OTP messages go one number per call (BatchSendMessageToGlobe takes NOTIFY and MKT only), so a pack of them
#: is that many sequential calls: 50 keep a dispatcher well inside its 30 s timeout even at slow provider latency.
ALIYUN_SINGLE_SENDS_PER_PACK = 50
