"""Packing accepted recipients into provider-sized queue messages (pure)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from globesms.domain.provider_limits import ALIYUN_SINGLE_SENDS_PER_PACK, PACK_BYTES_BUDGET, RECIPIENTS_PER_CALL
from globesms.models.outbound import MessageType, ProviderName
from globesms.models.packs import DispatchPack, PackContent
from globesms.models.records import MessageRecord

_RECIPIENT_OVERHEAD = 40  # '{"id":"","to":"","c":0,"segments":null},' around the values
_PRICED_OVERHEAD = 20  # ',"price":"","cost":""'
_COUNTRY_OVERHEAD = 14  # ',"country":""'
_ENCODING_OVERHEAD = 14  # ',"encoding":""'


def content_of(record: MessageRecord) -> PackContent:
    return PackContent.model_construct(**dict(record.content()))


def _content_bytes(content: PackContent) -> int:
    return len(json.dumps(content.model_dump(exclude_none=True), ensure_ascii=False).encode())


def pack_records(
    records: Iterable[MessageRecord],
    *,
    batch_id: str,
    created_at: str,
    expires_at: int | None,
    pack_id_prefix: str | None = None,
    history: Mapping[str, list[dict[str, Any]]] | None = None,
    history_bytes: Mapping[str, int] | None = None,
    priced_bytes: int | None = None,
) -> dict[ProviderName, list[DispatchPack]]:
    """Group records by provider, in order, into packs of at most one provider call and at most
    PACK_BYTES_BUDGET bytes of JSON. Pack ids (`<prefix>:<provider>:<n>`, the prefix being the batch id unless
    given) are deterministic, so a repeated accept (or failover) repeats the same packs. `history`: steps to carry
    to the dispatcher for some recipients (by id), e.g. the provider they failed over from. `history_bytes`: the
    bytes to budget for a recipient's `history` instead of measuring it (no fewer than its JSON holds), where the
    split must not depend on what the steps say (`failover.reroute`). `priced_bytes`: likewise, the bytes to budget
    for every recipient's price and cost, whether it has them or not (no fewer than theirs take), where the split
    must not depend on the price table (`failover.reroute`)."""
    groups: dict[tuple[ProviderName, int], list[MessageRecord]] = {}
    for record in records:
        groups.setdefault((record.provider, recipients_per_pack(record)), []).append(record)
    packs: dict[ProviderName, list[DispatchPack]] = {}
    for (provider, cap), group in groups.items():
        provider_packs = packs.setdefault(provider, [])
        provider_packs += _packs_for(
            provider,
            group,
            cap=cap,
            first_number=len(provider_packs),
            batch_id=batch_id,
            pack_id_prefix=pack_id_prefix or batch_id,
            created_at=created_at,
            expires_at=expires_at,
            history=history or {},
            history_bytes=history_bytes or {},
            priced_bytes=priced_bytes,
        )
    return packs


def recipients_per_pack(record: MessageRecord) -> int:
    """The most recipients a pack of this record's kind holds: one provider call."""
    if record.provider is ProviderName.ALIYUN and record.type is MessageType.OTP:
        return ALIYUN_SINGLE_SENDS_PER_PACK
    return RECIPIENTS_PER_CALL[record.provider]


def _packs_for(
    provider: ProviderName,
    records: Sequence[MessageRecord],
    *,
    cap: int,
    first_number: int,
    batch_id: str,
    pack_id_prefix: str,
    created_at: str,
    expires_at: int | None,
    history: Mapping[str, list[dict[str, Any]]],
    history_bytes: Mapping[str, int],
    priced_bytes: int | None,
) -> list[DispatchPack]:
    packs: list[DispatchPack] = []
    contents: list[PackContent] = []
    content_index: dict[tuple[object, ...], int] = {}
    recipients: list[dict[str, Any]] = []
    size = 0

    def flush() -> None:
        nonlocal contents, content_index, recipients, size
        if recipients:
            packs.append(
                _dispatch_pack(
                    pack_id=f"{pack_id_prefix}:{provider}:{first_number + len(packs)}",
                    batch_id=batch_id,
                    provider=provider,
                    created_at=created_at,
                    expires_at=expires_at,
                    contents=contents,
                    recipients=recipients,
                    owner=records[0].owner,  # one batch: one owner
                    currency=next((r.currency for r in records if r.currency), None),
                )
            )
        contents, content_index, recipients, size = [], {}, [], 0

    for record in records:
        key = record.content_key()
        new_content = content_of(record) if key not in content_index else None
        steps = history.get(record.id)
        extra = _recipient_bytes(record, steps, history_bytes.get(record.id), priced_bytes)
        if new_content is not None:
            extra += _content_bytes(new_content)
        if recipients and (len(recipients) >= cap or size + extra > PACK_BYTES_BUDGET):
            flush()
            if new_content is None:
                new_content = content_of(record)
                extra += _content_bytes(new_content)
        index = content_index.get(key)
        if index is None:
            assert new_content is not None
            index = content_index[key] = len(contents)
            contents.append(new_content)
        recipients.append(_pack_recipient(record, index, steps))
        size += extra
    flush()
    return packs


def pack_again(
    records: Sequence[MessageRecord],
    *,
    pack_id: str,
    provider: ProviderName,
    batch_id: str,
    created_at: str,
    expires_at: int | None,
    currency: str | None,
) -> DispatchPack:
    """The pack `pack_id` of exactly these records, in this order, as `pack_records` made it when they were accepted
    (an accept resumed: `accept/resume.py`). No size checks: these records made this pack once already. `currency`:
    as `pack_records` gave it (from the other records packed with these, which the caller has)."""
    contents: list[PackContent] = []
    content_index: dict[tuple[object, ...], int] = {}
    recipients: list[dict[str, Any]] = []
    for record in records:
        key = record.content_key()
        index = content_index.get(key)
        if index is None:
            index = content_index[key] = len(contents)
            contents.append(content_of(record))
        recipients.append(_pack_recipient(record, index, None))
    return _dispatch_pack(
        pack_id=pack_id,
        batch_id=batch_id,
        provider=provider,
        created_at=created_at,
        expires_at=expires_at,
        contents=contents,
        recipients=recipients,
        owner=records[0].owner,
        currency=currency,
    )


def _recipient_bytes(
    record: MessageRecord, steps: list[dict[str, Any]] | None, steps_bytes: int | None, priced_bytes: int | None
) -> int:
    extra = len(record.id) + len(record.to) + _RECIPIENT_OVERHEAD
    if record.country:
        extra += len(record.country) + _COUNTRY_OVERHEAD
    if record.encoding:
        extra += len(record.encoding) + _ENCODING_OVERHEAD
    if steps:
        extra += len(json.dumps(steps)) if steps_bytes is None else steps_bytes
    if priced_bytes is not None:
        extra += priced_bytes
    elif record.cost is not None:
        extra += len(record.cost) + len(record.price or "") + _PRICED_OVERHEAD
    return extra


def _dispatch_pack(**fields: Any) -> DispatchPack:
    # Its recipients (`PackRecipient`) validated in the same call, as plain data: up to 1,000 a pack, a model built
    # for each from Python cost half as much again.
    return DispatchPack.model_validate(fields)


def _pack_recipient(record: MessageRecord, index: int, steps: list[dict[str, Any]] | None) -> dict[str, Any]:
    """A recipient's entry in its pack (`PackRecipient`)."""
    return {
        "id": record.id,
        "to": record.to,
        "c": index,
        "country": record.country,
        "segments": record.segments,
        "encoding": record.encoding,
        "history": steps or None,
        "price": record.price,
        "cost": record.cost,
    }
