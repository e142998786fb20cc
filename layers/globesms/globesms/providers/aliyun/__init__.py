"""Alibaba Cloud SMS (dysmsapi 2018-05-01, global API): signed httpx client, error table, receipts."""

from globesms.providers.aliyun.client import (
    AliyunClient,
    AliyunSettings,
    PlannedCall,
    PreparedCall,
    batch_task_id,
    from_environment,
    plan_calls,
    settings_from_environment,
)

__all__ = [
    "AliyunClient",
    "AliyunSettings",
    "PlannedCall",
    "PreparedCall",
    "batch_task_id",
    "from_environment",
    "plan_calls",
    "settings_from_environment",
]
