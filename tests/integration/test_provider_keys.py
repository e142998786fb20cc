"""The dispatch handler follows a rotated provider key (README: within 5 minutes, through Powertools' cache)."""

import json

import boto3
from aws_lambda_powertools.utilities import parameters


def test_the_dispatcher_signs_with_the_key_its_secret_holds_now(stack, load_handler, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def store(key_id: str) -> str:
        return json.dumps(
            {"GLOBESMS_ALIYUN_ACCESS_KEY_ID": key_id, "GLOBESMS_ALIYUN_ACCESS_KEY_SECRET": f"secret-of-{key_id}"}
        )

    secrets = boto3.client("secretsmanager")
    secrets.create_secret(Name="globesms/aliyun-keys", SecretString=store("LTAI-before"))
    parameters.clear_caches()
    dispatch = load_handler("dispatch", GLOBESMS_PROVIDER="aliyun")
    monkeypatch.setenv("GLOBESMS_ALIYUN_SECRET_NAME", "globesms/aliyun-keys")

    def key_in_use() -> str:
        provider = dispatch._provider()
        client = getattr(provider, "client", provider)  # the client that signs
        return str(client.settings.access_key_id)

    assert key_in_use() == "LTAI-before"
    secrets.put_secret_value(SecretId="globesms/aliyun-keys", SecretString=store("LTAI-after"))
    assert key_in_use() == "LTAI-before"  # within the cache's 5 minutes
    parameters.clear_caches()  # the 5 minutes are over
    assert key_in_use() == "LTAI-after"
    parameters.clear_caches()
