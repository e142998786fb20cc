"""Planning an accept: every recipient of a request parsed, checked, routed and priced into its record, the
refused ones into errors, and the records packed (for now, or held per send time). Pure but for the documents it
reads through their caches (route table, templates, guardrails' rules, opt-outs, quiet hours); `service.py` writes
and queues what is planned here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from globesms.accept.packing import pack_records
from globesms.config import QuietHoursSettings, settings
from globesms.consent import quiet_hours
from globesms.consent import screen as consent_screen
from globesms.consent.quiet_window import Window
from globesms.domain.clock import iso
from globesms.domain.phone import InvalidNumber, ParsedNumber, parse_mobile
from globesms.domain.segments import count_segments
from globesms.domain.status import Status
from globesms.errors import RecipientCode
from globesms.guardrails import gate
from globesms.models.api import MessageSpec
from globesms.models.errors import RecipientError
from globesms.models.limits import MAX_RECIPIENTS_PER_REQUEST
from globesms.models.outbound import MessageType, ProviderName
from globesms.models.packs import DispatchPack
from globesms.models.records import MessageRecord, message_id
from globesms.reconcile.deadline import with_default_validity
from globesms.routing.route_table import RouteTable, current_table
from globesms.routing.router import Routed, RouteRefusal, SpecRouter
from globesms.routing.templates import ParamsProblem, Rendered, TemplateRegistry, render
from globesms.routing.templates import registry as template_registry
from globesms.scheduling import hold as scheduling


def expiry(now: datetime, retention_days: int) -> int:
    return int((now + timedelta(days=retention_days)).timestamp())


class TooManyRecipients(ValueError):
    def __init__(self, count: int, *, at_least: bool = False) -> None:
        counted = f"at least {count}" if at_least else str(count)
        super().__init__(f"{counted} recipients; at most {MAX_RECIPIENTS_PER_REQUEST} per request")
        self.count = count


@dataclass
class AcceptPlan:
    records: list[MessageRecord] = field(default_factory=list)
    errors: list[RecipientError] = field(default_factory=list)
    packs: dict[ProviderName, list[DispatchPack]] = field(default_factory=dict)
    held: list[scheduling.HeldGroup] = field(default_factory=list)  # SCHEDULED recipients' packs, per send_at


def count_recipients(specs: Sequence[MessageSpec]) -> int:
    return sum(1 if isinstance(s.to, str) else len(s.to) for s in specs)


def plan_batch(
    specs: Sequence[MessageSpec],
    *,
    batch_id: str,
    now: datetime,
    retention_days: int,
    routes: RouteTable | None = None,
    templates: TemplateRegistry | None = None,
    opt_outs: consent_screen.OptOutCheck | Literal["current"] | None = "current",
    rules: gate.Rules | None = None,
    owner: str | None = None,
    quiet: Window | None = None,
) -> AcceptPlan:
    """Everything accept decides, without I/O (but for the route table's and the guardrails' SSM overrides, read
    through a 5-minute cache, and the opt-out list, `consent.screen`). Recipient indexes (and message ids) count
    across all specs. `owner`: the API key (or intake owner) the records belong to. `quiet`: the default quiet hours
    of MKT (`consent.quiet_hours`; by default the deployment's GLOBESMS_QUIET_HOURS)."""
    total = count_recipients(specs)
    if total > MAX_RECIPIENTS_PER_REQUEST:
        raise TooManyRecipients(total)
    routes = current_table() if routes is None else routes
    templates = template_registry() if templates is None else templates
    stamps = _BatchStamps(batch_id, created_at=iso(now), expires_at=expiry(now, retention_days), owner=owner)
    plan = AcceptPlan()
    index = 0
    quiet_default = settings(QuietHoursSettings).window() if quiet is None else quiet
    windows: dict[str, Window | None] = {}  # record id -> its quiet hours (None: waived)
    # OTP: one per number in the whole request, whatever its spec. A second code in the same request is a client
    # bug (the first is void once the second arrives), and it bounds what the OTP guard keeps per batch: each number
    # once, so a chunk's marker holds at most 99 refusals (otp_guard.py), whatever the body repeats.
    otp_numbers: set[str] = set()
    for spec in specs:
        router, contents = _spec_routing(spec, routes, templates)
        window = _quiet_window(spec, quiet_default)
        seen: set[str] = otp_numbers if spec.type == MessageType.OTP else set()
        routed_alike: dict[Routed, MessageRecord] = {}
        for raw in spec.recipients:
            planned = _plan_recipient(
                spec, raw, index, seen=seen, router=router, contents=contents, stamps=stamps, alike=routed_alike
            )
            index += 1
            if isinstance(planned, RecipientError):
                plan.errors.append(planned)
            else:
                plan.records.append(planned)
                windows[planned.id] = window
    check = consent_screen.current() if opt_outs == "current" else opt_outs
    plan.records, opted_out = consent_screen.refuse_opted_out(plan.records, check)
    if opted_out:
        plan.errors = sorted([*plan.errors, *opted_out], key=lambda e: e.index)
    plan.records, plan.errors = gate.screen(plan.records, plan.errors, rules or gate.current_rules())
    plan.records, quiet_refused = quiet_hours.defer_quiet(plan.records, windows, now)
    if quiet_refused:
        plan.errors = sorted([*plan.errors, *quiet_refused], key=lambda e: e.index)
    pack_plan(plan, batch_id=batch_id, created_at=stamps.created_at, expires_at=stamps.expires_at)
    return plan


def _quiet_window(spec: MessageSpec, default: Window) -> Window | None:
    """The spec's quiet hours: its own, the default, or None when it waives them (only where allowed)."""
    if spec.quiet_hours is False:
        return None
    return default if spec.quiet_hours is None else spec.quiet_hours.window()


def pack_plan(
    plan: AcceptPlan, *, batch_id: str, created_at: str, expires_at: int | None, prefix: str | None = None
) -> None:
    """Pack the plan's records: those to send now on provider packs, the SCHEDULED ones held per send_at. `prefix`:
    of the pack ids, in place of the batch id (`resume.fresh_prefix`)."""
    now_records = [r for r in plan.records if r.send_at is None]
    plan.packs = pack_records(
        now_records, batch_id=batch_id, created_at=created_at, expires_at=expires_at, pack_id_prefix=prefix
    )
    plan.held = []
    if len(now_records) < len(plan.records):
        plan.held = scheduling.held_groups(
            plan.records, batch_id=batch_id, created_at=created_at, expires_at=expires_at, pack_id_prefix=prefix
        )
    # Each record names its pack: a cancel takes that pack's claim before any dispatcher does (scheduling/cancel.py).
    packs = [*(p for ps in plan.packs.values() for p in ps), *(p for group in plan.held for p in group.packs)]
    # One key string per pack, shared by its records (up to 1,000 of them).
    pack_of = {
        recipient.id: key
        for pack in packs
        for key in (pack.pack_id.removeprefix(batch_id),)
        for recipient in pack.recipients
    }
    for record in plan.records:
        record.pack_key = pack_of.get(record.id)


@dataclass(frozen=True)
class _BatchStamps:
    batch_id: str
    created_at: str
    expires_at: int
    owner: str | None = None


def _plan_recipient(
    spec: MessageSpec,
    raw: str,
    this: int,
    *,
    seen: set[str],
    router: SpecRouter,
    contents: Callable[[ProviderName], Rendered | ParamsProblem],
    stamps: _BatchStamps,
    alike: dict[Routed, MessageRecord],
) -> MessageRecord | RecipientError:
    """Recipient `this` of the request (`raw` as given): its record, or why it is refused. `seen`: the numbers of
    this spec's records so far, or for OTP of every OTP spec's (this one is added if it becomes a record: a number
    refused here, for its route or its content, is no duplicate's reason). `alike`: the spec's first record of each
    route so far (this one is added if it is the first)."""
    try:
        number = parse_mobile(raw)
    except InvalidNumber as exc:
        return RecipientError(index=this, to=raw, code=exc.code, message=str(exc))
    if number.e164 in seen:
        # The same content twice to one number in one request is nearly always a client bug; sending
        # it would text somebody twice.
        repeated = "an OTP to this number is already in this request" if spec.type == MessageType.OTP else None
        return RecipientError(
            index=this,
            to=raw,
            code=RecipientCode.DUPLICATE_RECIPIENT,
            message=repeated or "number repeated in this message",
        )
    record_id = message_id(stamps.batch_id, this)
    routed = router.route(number.country, number.country_code, record_id)
    if isinstance(routed, RouteRefusal):
        return RecipientError(index=this, to=raw, code=routed.code, message=routed.message)
    first = alike.get(routed)
    if first is not None:
        # The records of one spec routed alike differ only in their id, number and country: a copy of the first
        # with those three, not validated again (they are this module's own: an id, and the E.164 number and region
        # `parse_mobile` gave). A third of the CPU of validating each of 10,000 records whole.
        seen.add(number.e164)
        return first.model_copy(update={"id": record_id, "to": number.e164, "country": number.country})
    carried, content = _carried(routed, contents)
    if isinstance(content, ParamsProblem):
        return RecipientError(index=this, to=raw, code=content.code, message=content.message)
    record = alike[routed] = _new_record(spec, router, carried, content, record_id, number, stamps)
    seen.add(number.e164)
    return record


def _carried(
    routed: Routed, contents: Callable[[ProviderName], Rendered | ParamsProblem]
) -> tuple[Routed, Rendered | ParamsProblem]:
    """The drawn provider and the content it gets, with the route cut to the providers whose content can be sent (a
    registered template's text with its params too long in one provider's version, a param its version lacks); when
    the drawn one's cannot, the first of those. A recipient is refused only when no provider of its route can carry
    it: refused by the draw, 18 of 40 recipients of one request were refused while the others went out through
    another provider of the same route (a review); and a failover, which tries the next provider only, no longer
    stops at one that cannot carry it."""
    content = contents(routed.provider)
    carriers = tuple(p for p in routed.route if not isinstance(contents(p), ParamsProblem))
    if not carriers or carriers == routed.route:
        return routed, content
    return Routed(carriers[0], carriers), contents(carriers[0])


def _new_record(
    spec: MessageSpec,
    router: SpecRouter,
    routed: Routed,
    content: Rendered,
    record_id: str,
    number: ParsedNumber,
    stamps: _BatchStamps,
) -> MessageRecord:
    return MessageRecord(
        id=record_id,
        batch_id=stamps.batch_id,
        to=number.e164,
        provider=routed.provider,
        type=spec.type,
        status=Status.ACCEPTED if spec.send_at is None else Status.SCHEDULED,
        send_at=None if spec.send_at is None else iso(spec.send_at),
        text=content.text,
        template_id=content.template_id,
        template_params=content.template_params,
        template_ref=router.template_id if router.registered is not None else None,
        route=routed.route,
        sender_id=spec.sender_id,
        validity_seconds=with_default_validity(spec.type, spec.validity_seconds),  # an OTP's 10 minutes
        client_ref=spec.client_ref,
        status_callback=spec.status_callback,
        status_callback_on_submitted=spec.status_callback_on_submitted or None,
        failover_on_undelivered=spec.failover_on_undelivered or None,
        segments=content.segments,
        country=number.country,
        owner=stamps.owner,
        created_at=stamps.created_at,
        updated_at=stamps.created_at,
        expires_at=stamps.expires_at,
    )


def _spec_routing(
    spec: MessageSpec, routes: RouteTable, templates: TemplateRegistry
) -> tuple[SpecRouter, Callable[[ProviderName], Rendered | ParamsProblem]]:
    """The spec's router, and its content as each provider gets it (worked out once per provider)."""
    if spec.template is None:
        assert spec.text is not None
        text = Rendered(text=spec.text, segments=count_segments(spec.text))
        return SpecRouter(routes, "text", spec.type, pin=spec.provider), lambda _provider: text
    template_id = spec.template.id
    params = {k: str(v) for k, v in spec.template.params.items()}
    versions = templates.get(template_id)
    router = SpecRouter(routes, "template", spec.type, spec.provider, template_id, versions)
    if versions is None:
        # Not in the registry: the provider's own template id, the params in the order given.
        own = Rendered(template_id=template_id, template_params=params)
        return router, lambda _provider: own
    rendered: dict[ProviderName, Rendered | ParamsProblem] = {}

    def content(provider: ProviderName) -> Rendered | ParamsProblem:
        found = rendered.get(provider)
        if found is None:
            found = rendered[provider] = render(versions[provider], params)
        return found

    return router, content
