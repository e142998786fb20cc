"""Whether a push carries its provider's signature, where the provider signs pushes (`receipts.auth`): Huawei with
GLOBESMS_HUAWEI_RECEIPT_AUTH=aksk signs every push of its application with the AK/SK scheme, its status reports and
its replies alike. Both push routes check it, once the URL's token is right and the body read: a reply can take a
number off the opt-out list, so it needs the same proof as a receipt."""

from __future__ import annotations

from collections.abc import Mapping

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from globesms.domain.clock import utc_now
from globesms.models.outbound import ProviderName
from globesms.receipts.auth import push_signature_accepted


def push_signed(name: ProviderName, env: Mapping[str, str], event: APIGatewayProxyEvent, body: bytes) -> bool:
    """`env`: the receipts environment of `name` (`providers.receipt_environment`: with Huawei's AK/SK)."""
    return push_signature_accepted(
        name,
        env,
        method=event.http_method,
        path=event.request_context.path or event.path,  # as the pusher addressed it: with the API stage
        query=event.query_string_parameters or {},
        headers=event.headers,
        body=body,
        now=utc_now(),
    )
