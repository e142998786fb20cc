"""Who the opt-out list applies to, without the list's number handling (`consent.optouts` normalises numbers with
phonenumbers): the dispatchers read the list too (`dispatch.opt_outs`) and import no phonenumbers (their cold start)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from globesms.models.outbound import MessageType

#: The one owner of the list until API keys have owners (docs/consent.md).
DEFAULT_OWNER: Final = "default"


def blocked_types(*, otp_too: bool) -> Collection[MessageType]:
    """The message types an opted-out number does not get: MKT and NOTIFY; OTP only when the deployment says so
    (GLOBESMS_OPT_OUT_BLOCKS_OTP), because a person who opted out of marketing still needs a login code."""
    return frozenset(MessageType) if otp_too else frozenset({MessageType.MKT, MessageType.NOTIFY})
