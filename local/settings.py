"""Defaults of the local stack: ports and the credentials the emulators accept and the clients sign with.

These are local-only stand-ins, not secrets: the emulators accept exactly these unless the GLOBESMS_* variables
override them (docs/configuration.md). `make run` exports them to every process it starts.
"""

from __future__ import annotations

LOCAL_ENV_DEFAULTS: dict[str, str] = {
    "GLOBESMS_ALIYUN_ACCESS_KEY_ID": "LTAI5tLocalGlobesms",
    "GLOBESMS_ALIYUN_ACCESS_KEY_SECRET": "local-aliyun-secret",
    "GLOBESMS_TENCENT_SECRET_ID": "AKIDLocalGlobesms",
    "GLOBESMS_TENCENT_SECRET_KEY": "local-tencent-secret",
    "GLOBESMS_TENCENT_SDK_APP_ID": "1400000000",
    "GLOBESMS_HUAWEI_APP_KEY": "localHuaweiAppKey",
    "GLOBESMS_HUAWEI_APP_SECRET": "local-huawei-app-secret",
    "GLOBESMS_HUAWEI_SENDER": "isms0000000001",
    # The secret part of each provider's receipt URL (/v1/receipts/<provider>/<token>).
    "GLOBESMS_ALIYUN_RECEIPT_TOKEN": "local-aliyun-receipts-0001",
    "GLOBESMS_TENCENT_RECEIPT_TOKEN": "local-tencent-receipts-0001",
    "GLOBESMS_HUAWEI_RECEIPT_TOKEN": "local-huawei-receipts-0001",
    # The secret part of each provider's reply URL (/v1/replies/<provider>/<token>).
    "GLOBESMS_ALIYUN_REPLY_TOKEN": "local-aliyun-replies-0001",
    "GLOBESMS_TENCENT_REPLY_TOKEN": "local-tencent-replies-0001",
    "GLOBESMS_HUAWEI_REPLY_TOKEN": "local-huawei-replies-0001",
    # Signs the events sent to customers' status_callback URLs.
    "GLOBESMS_WEBHOOK_SECRET": "local-webhook-secret",
    # Locally a status_callback may be plain http to 127.0.0.1 (local.webhook_receiver).
    "GLOBESMS_ALLOW_LOOPBACK_CALLBACKS": "true",
}

EMULATOR_PORTS: dict[str, int] = {"aliyun": 9101, "tencent": 9102, "huawei": 9103}
WEBHOOK_RECEIVER_PORT = 9200
MOTO_PORT = 5000  # moto for SQS and every service but DynamoDB (AWS_ENDPOINT_URL)
MOTO_DYNAMODB_PORT = 5001  # moto for DynamoDB and its streams (AWS_ENDPOINT_URL_DYNAMODB), a process of its own
API_PORT = 3000
# The local API key (API Gateway's `x-api-key`) unless GLOBESMS_API_KEY sets another; the command line uses it too.
DEFAULT_API_KEY = "local-dev-key"
DEFAULT_API_KEY_ID = "local-api-key"  # its id, as API Gateway gives a key one (`requestContext.identity.apiKeyId`)
