"""Defaults of the local stack: ports and the credentials the emulators accept and the clients sign with.

These are local-only stand-ins, not secrets: the emulators accept exactly these unless the GLOBESMS_* variables
override them (README, "Configuration"). `make run` exports them to every process it starts.
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
}

EMULATOR_PORTS: dict[str, int] = {"aliyun": 9101, "tencent": 9102, "huawei": 9103}
MOTO_PORT = 5000
API_PORT = 3000
