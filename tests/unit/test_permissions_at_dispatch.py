"""The country permissions read again at dispatch (`dispatch/permissions.py`): a country denied after its message
was accepted is not sent to; its recipients end FAILED with `COUNTRY_NOT_ALLOWED` and their spend is given back."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from globesms import hooks
from globesms.consent.screen import OptOutCheck
from globesms.dispatch.service import DispatchDeps, dispatch_pack
from globesms.domain.status import Status
from globesms.errors import ErrorCategory, RecipientCode
from globesms.guardrails.permissions import PermissionsDoc
from globesms.models.packs import DispatchPack
from tests.fakes import (
    MemorySpendReleases,
    MemoryStore,
    ScriptedProvider,
    memory_dispatch_deps,
)
from tests.unit.test_consent_optouts import MemoryOptOuts

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)

DENY_GB_MKT = PermissionsDoc.model_validate({"version": 1, "types": {"MKT": {"deny": ["GB"]}}})


def pack() -> DispatchPack:
    return DispatchPack.model_validate(
        {
            "pack_id": "B:aliyun:0",
            "batch_id": "B",
            "provider": "aliyun",
            "created_at": "2026-12-07T09:00:00.000000Z",
            "currency": "USD",
            "contents": [{"type": "MKT", "text": "sale"}, {"type": "OTP", "text": "code 1"}],
            "recipients": [
                {"id": "B.00000", "to": "+85251234560", "c": 0, "country": "HK", "price": "0.05", "cost": "0.05"},
                {"id": "B.00001", "to": "+447911123456", "c": 0, "country": "GB", "price": "0.04", "cost": "0.04"},
                {"id": "B.00002", "to": "+447911123457", "c": 1, "country": "GB", "price": "0.04", "cost": "0.04"},
                # Queued before packs carried the country: accept checked it; it is not parsed again here.
                {"id": "B.00003", "to": "+447911123458", "c": 0, "price": "0.04", "cost": "0.04"},
            ],
        }
    )


def deps(store: MemoryStore, provider: ScriptedProvider, permissions: Any, **more: Any) -> DispatchDeps:
    return memory_dispatch_deps(store, provider, permissions=permissions, **more)


def always(doc: PermissionsDoc) -> Any:
    def read(*, fresh: bool = False) -> PermissionsDoc:
        return doc

    return read


def sent_ids(provider: ScriptedProvider) -> list[str]:
    return sorted(m.message_id for call in provider.calls for m in call)


def test_a_country_denied_after_accept_is_not_sent_to_and_ends_failed_with_its_spend_given_back() -> None:
    store, provider, releases = MemoryStore(), ScriptedProvider(), MemorySpendReleases()
    summary = dispatch_pack(
        pack(), deps(store, provider, always(DENY_GB_MKT), spend=releases), now=NOW, last_attempt=False
    )
    assert sent_ids(provider) == ["B.00000", "B.00002", "B.00003"]  # the OTP to GB: its type is not denied
    denied = store.messages["B.00001"]
    assert (denied.status, denied.error_category, denied.error_code, denied.provider_message_id) == (
        Status.FAILED,
        ErrorCategory.RECIPIENT,
        RecipientCode.COUNTRY_NOT_ALLOWED,
        None,
    )
    assert denied.error_message is not None and "GB is in the deny-list for MKT messages" in denied.error_message
    assert (summary.submitted, summary.failed) == (3, 1)
    assert releases.released == {"B.00001"}
    assert sum(releases.given_back.values(), Decimal(0)) == Decimal("0.04")


def test_an_allow_list_without_the_country_refuses_it_at_dispatch_too() -> None:
    allow_hk = PermissionsDoc.model_validate({"version": 1, "default": {"allow": ["HK"]}})
    store, provider = MemoryStore(), ScriptedProvider()
    dispatch_pack(pack(), deps(store, provider, always(allow_hk)), now=NOW, last_attempt=False)
    assert sent_ids(provider) == ["B.00000", "B.00003"]
    assert {store.messages[i].error_code for i in ("B.00001", "B.00002")} == {RecipientCode.COUNTRY_NOT_ALLOWED}


def test_permissions_that_cannot_be_read_leave_the_pack_as_accept_allowed_it() -> None:
    def unreadable(*, fresh: bool = False) -> PermissionsDoc:
        raise RuntimeError("SSM throttled")

    store, provider = MemoryStore(), ScriptedProvider()
    summary = dispatch_pack(pack(), deps(store, provider, unreadable), now=NOW, last_attempt=False)
    assert (sent_ids(provider), summary.failed) == (["B.00000", "B.00001", "B.00002", "B.00003"], 0)


def test_a_recipient_both_denied_and_opted_out_is_recorded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    listed = MemoryOptOuts()
    listed.entries[("default", "+447911123456")] = {"number": "+447911123456"}
    monkeypatch.setitem(hooks.installed, hooks.OPT_OUT_CHECK, lambda: OptOutCheck(listed))
    store, provider = MemoryStore(), ScriptedProvider()
    summary = dispatch_pack(pack(), deps(store, provider, always(DENY_GB_MKT)), now=NOW, last_attempt=False)
    assert store.messages["B.00001"].error_code == RecipientCode.COUNTRY_NOT_ALLOWED
    assert (summary.submitted, summary.failed) == (3, 1)


def test_without_permissions_nothing_is_checked_at_dispatch() -> None:
    store, provider = MemoryStore(), ScriptedProvider()
    dispatch_pack(pack(), deps(store, provider, None), now=NOW, last_attempt=False)
    assert len(sent_ids(provider)) == 4


def test_a_refusal_by_the_dispatchers_cached_copy_is_confirmed_past_the_cache() -> None:
    """Accept and each dispatcher keep their own copy for up to 5 minutes: after GB was allowed again, a fresh
    accept allowed an MKT to GB that a warm dispatcher's older copy then failed, "changed after the message was
    accepted" when they changed before it (found by a review). Only what a fresh read refuses stands."""
    reads: list[bool] = []

    def cached_then_fresh(*, fresh: bool = False) -> PermissionsDoc:
        reads.append(fresh)
        return PermissionsDoc.model_validate({"version": 1}) if fresh else DENY_GB_MKT

    store, provider = MemoryStore(), ScriptedProvider()
    summary = dispatch_pack(pack(), deps(store, provider, cached_then_fresh), now=NOW, last_attempt=False)
    assert (len(sent_ids(provider)), summary.failed, reads) == (4, 0, [False, True])

    def fresh_unreadable(*, fresh: bool = False) -> PermissionsDoc:
        if fresh:
            raise RuntimeError("SSM throttled")
        return DENY_GB_MKT

    store, provider = MemoryStore(), ScriptedProvider()
    summary = dispatch_pack(pack(), deps(store, provider, fresh_unreadable), now=NOW, last_attempt=False)
    # Not confirmed (SSM throttled): the cached copy's refusal stands, a country shut during an attack stays shut.
    assert (sent_ids(provider), summary.failed) == (["B.00000", "B.00002", "B.00003"], 1)


def test_a_pack_nobody_of_which_is_refused_costs_no_fresh_read() -> None:
    reads: list[bool] = []

    def counted(*, fresh: bool = False) -> PermissionsDoc:
        reads.append(fresh)
        return PermissionsDoc.model_validate({"version": 1})

    dispatch_pack(pack(), deps(MemoryStore(), ScriptedProvider(), counted), now=NOW, last_attempt=False)
    assert reads == [False]
