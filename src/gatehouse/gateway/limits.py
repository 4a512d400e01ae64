"""Per-caller limits: rate limits, concurrency and budget reservations, decided atomically.

(Per-deployment queueing is :mod:`gatehouse.gateway.routing.capacity`.)

Before the call, one :meth:`Counters.admit` grants every claim of the request
or none: requests and tokens per minute (GCRA), concurrent requests, and the
spend of every budget that applies. After the call, :meth:`Counters.settle`
replaces the reservations with the real usage and cost (giving back what was
not used), and releases the concurrency slot.

A hard budget reserves an upper bound of the call's cost: the prompt's bound
from :func:`gatehouse.catalog.prompt_tokens` (UTF-8 bytes plus template, tool
and image overheads) and the completion limit (``max_completion_tokens`` /
``max_tokens``, else the longest completion the model can write, times ``n``),
at the dearest price among the deployments the call may reach. Because the
reservation happens inside the atomic admit and is never below the real cost,
N concurrent requests can never together pass a hard budget. Token-per-minute
limits and soft budgets reserve the cheap estimate: they settle with the real
usage, and nothing is refused on a soft budget.

Limits and budgets attach to the key, its user, its team and
its organisation (from the admin API) and to the model (``limits.models``).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from gatehouse.catalog import PricingTable, prompt_tokens
from gatehouse.core.config import LimitsConfig, LimitSpec
from gatehouse.core.errors import (
    BudgetExceededError,
    RateLimitError,
    ServiceUnavailableError,
)
from gatehouse.core.ids import Clock
from gatehouse.core.principal import Principal
from gatehouse.core.records import Budget, BudgetSpend, period_window
from gatehouse.core.types import ChatCompletionChunk, ChatCompletionRequest
from gatehouse.gateway.keys import Directory
from gatehouse.gateway.pipeline import CallContext, ChatStream, Next, Result
from gatehouse.store.counters import (
    UNLIMITED,
    Claim,
    ClaimKind,
    Counters,
    CounterUnavailableError,
    CounterUnseededError,
    Outcome,
)
from gatehouse.store.ledger import LedgerStore

log = logging.getLogger("gatehouse.admission")  # the name operators filter on; kept

SubjectName = Literal["key", "user", "team", "org", "model"]
GAUGE_TTL = 600.0  # a crashed replica's concurrency slots free themselves after this


_Subject = tuple[SubjectName, str, LimitSpec | None, Budget | None]


@dataclass(slots=True)
class _Budgeted:
    """A budget a call is charged to; its counter key changes with the period."""

    kind: Literal["key", "user", "team", "org"]
    name: str
    budget: Budget
    prefix: str  # the counter key without the period's label


@dataclass(slots=True)
class _Template:
    """Every claim that one set of subjects makes, worked out once per set (and
    again after any admin change): the per-request plan only fills in amounts.

    ``rules[i]`` builds ``claims[i]``: a ready :class:`Claim` when its amount
    never varies (requests, concurrency), a tokens limit (key, limit), or a
    budget.
    """

    rules: list[Claim | tuple[str, float] | _Budgeted] = field(default_factory=list)
    hard: bool = False  # some budget is hard: reserve the cost's upper bound
    roles: list[str] = field(default_factory=list)  # "requests" | "tokens" | "parallel" | ...
    soft: list[tuple[int, str, float]] = field(default_factory=list)  # claim, who, max_usd
    requests_at: list[int] = field(default_factory=list)  # claims behind x-ratelimit-*
    tokens_at: list[int] = field(default_factory=list)
    budgets_at: list[int] = field(default_factory=list)  # claims of budgets


@dataclass(slots=True)
class _Plan:
    template: _Template
    claims: list[Claim]
    max_cost: float
    outcomes: tuple[Outcome, ...] = ()  # the admission's, once granted


class LimitsStage:
    def __init__(
        self,
        counters: Counters,
        directory: Directory,
        ledger: LedgerStore,
        pricing: PricingTable,
        limits: LimitsConfig,
        *,
        clock: Clock,
        fail_open: bool = False,
    ) -> None:
        self._counters = counters
        self._directory = directory
        self._ledger = ledger
        self._pricing = pricing
        self._limits = limits
        self._clock = clock
        self._fail_open = fail_open
        self._seeded: set[str] = set()
        self._seeding: dict[str, asyncio.Future[None]] = {}
        self._templates: dict[tuple[str, str | None, str | None, str], tuple[int, _Template]] = {}
        self._windows: dict[str, tuple[str, float, float]] = {}
        self.counter_failures = 0
        self.soft_alerts = 0
        self._budget_watch: Callable[[BudgetSpend], None] | None = None

    def configure(self, limits: LimitsConfig) -> None:
        """Judge calls by ``limits`` from now on (a configuration reload); the claims
        built from the old ones are dropped."""
        self._limits = limits
        self._templates.clear()

    def watch_budgets(self, watch: Callable[[BudgetSpend], None]) -> None:
        """Call ``watch`` with each budget's spend after every call charged to it
        settles (budget alerts). It runs on the request's path: it must be quick
        and must not raise."""
        self._budget_watch = watch

    async def __call__(self, ctx: CallContext, call_next: Next) -> Result:
        principal = ctx.principal
        if principal is None or principal.kind in ("local", "master"):
            return await call_next(ctx)
        now = self._clock()
        plan = await self._plan(ctx, principal, now)
        if not plan.claims:
            return await call_next(ctx)
        if not await self._admit(ctx, plan, now):
            # The counter store is down and policy says fail open: no
            # reservation was made, so there is nothing to settle.
            return await call_next(ctx)
        try:
            result = await call_next(ctx)
        except BaseException:
            await self._settle(ctx, plan, failed=True)
            raise
        if isinstance(result, AsyncIterator):
            return self._settle_after(ctx, plan, result)
        await self._settle(ctx, plan, failed=False)
        return result

    # -- planning: which claims this request makes --

    async def _plan(self, ctx: CallContext, principal: Principal, now: float) -> _Plan:
        request = ctx.request
        prompt, completion = prompt_tokens(request), 0
        if isinstance(request, ChatCompletionRequest):
            completion = request.token_limit() or self._limits.default_max_tokens
        est_tokens = prompt + completion
        template = await self._template(principal, ctx.model)
        estimate = self._pricing.max_cost(ctx.model, prompt, completion)
        max_cost = self._max_cost(ctx) if template.hard else estimate
        claims: list[Claim] = []
        for rule, role in zip(template.rules, template.roles, strict=True):
            if isinstance(rule, Claim):
                if ctx.requests_admitted and role == "requests" and _callers(rule):
                    # :meth:`admit_request` counted this request already (a stored
                    # prompt rendered first): claim nothing, keep the headers.
                    rule = rule._replace(amount=0.0)
                claims.append(rule)
            elif isinstance(rule, tuple):
                key, limit = rule
                claims.append(Claim("rate", key, limit, min(est_tokens, limit), 60.0))
            else:
                amount = max_cost if rule.budget.hard else estimate
                claims.append(await self._budget_claim(rule, amount, now))
        return _Plan(template, claims, max_cost)

    def _max_cost(self, ctx: CallContext) -> float:
        """The most the call can cost, whatever the upstream counts: what a hard budget
        reserves."""
        request = ctx.request
        completion = 0
        if isinstance(request, ChatCompletionRequest):
            limit = request.token_limit() or self._pricing.completion_limit(ctx.model)
            completion = limit * request.n
        prompt = prompt_tokens(request, bound=True)
        return self._pricing.max_cost(ctx.model, prompt, completion)

    async def _template(self, principal: Principal, model: str) -> _Template:
        """The claims of this caller on this model; cached until the directory
        drops its caches (any admin change)."""
        cache_key = (principal.id, principal.user, principal.team, model)
        generation = self._directory.generation
        cached = self._templates.get(cache_key)
        if cached is not None and cached[0] == generation:
            return cached[1]
        template = _Template()
        for kind, name, limits, budget in await self._subjects(principal, model):
            if limits is not None:
                _limit_rules(template, kind, name, limits)
            if budget is not None and kind != "model":
                template.budgets_at.append(len(template.rules))
                template.rules.append(
                    _Budgeted(kind, name, budget, f"spend:{kind}:{name}:{budget.period}:")
                )
                template.roles.append(f"budget:{kind}")
                template.hard = template.hard or budget.hard
                if not budget.hard:
                    template.soft.append(
                        (len(template.rules) - 1, f"{kind} {name}", budget.max_usd)
                    )
        if generation == self._directory.generation:
            if len(self._templates) > 100_000:
                self._templates.clear()
            self._templates[cache_key] = (generation, template)
        return template

    async def _subjects(self, principal: Principal, model: str) -> list[_Subject]:
        """Who this call is charged to, with their limits and budgets."""
        subjects: list[_Subject] = []
        if principal.key_id is not None:
            key = await self._directory.key(principal.key_id)
            if key is not None:
                record = key.record
                subjects.append(("key", record.id, record.limits, record.budget))
        if principal.user is not None:
            user = await self._directory.subject("user", principal.user)
            if user is not None:
                subjects.append(("user", user.id, user.limits, user.budget))
        if principal.team is not None:
            team = await self._directory.subject("team", principal.team)
            if team is not None:
                subjects.append(("team", team.id, team.limits, team.budget))
        if principal.org is not None:
            org = await self._directory.subject("org", principal.org)
            if org is not None:
                subjects.append(("org", org.id, org.limits, org.budget))
        model_limits = self._limits.models.get(model)
        if model_limits is not None:
            subjects.append(("model", model, model_limits, None))
        return subjects

    async def _budget_claim(self, rule: _Budgeted, amount: float, now: float) -> Claim:
        budget = rule.budget
        window = self._windows.get(budget.period)
        if window is None or not window[1] <= now < window[2]:
            window = self._windows[budget.period] = period_window(budget.period, now)
        label, start, end = window
        key = rule.prefix + label
        ttl = 0.0 if math.isinf(end) else end - now + 3600.0
        if key not in self._seeded:
            # A fresh counter (new process, Redis restarted) starts from what
            # the ledger says was already spent this period. Read once however
            # many calls arrive together: a burst on a new key would otherwise
            # take every database connection to read the same sum.
            seeding = self._seeding.get(key)
            if seeding is None:
                seeding = asyncio.ensure_future(self._seed(rule, key, start, ttl))
                self._seeding[key] = seeding
                seeding.add_done_callback(self._seeded_or_failed(key))
            try:
                await asyncio.shield(seeding)
            except Exception as exc:
                self._unavailable(f"cannot read spend for budget {key}: {exc}", budget.hard)
        limit = budget.max_usd if budget.hard else UNLIMITED
        # A counter that could not be seeded (the failure tolerated: a soft
        # budget, or fail_open) is counted from zero, as before seeding existed,
        # rather than refused by the store as unseeded.
        kind: ClaimKind = "spend" if key in self._seeded else "quota"
        return Claim(kind, key, limit, amount, ttl)

    async def _reseed(self, plan: _Plan, keys: Sequence[str], now: float) -> None:
        """Seed again the budgets of ``plan`` whose spend the store no longer holds
        (their claims become plain quotas when that fails and is tolerated)."""
        for index, (rule, claim) in enumerate(zip(plan.template.rules, plan.claims, strict=True)):
            if claim.key in keys and isinstance(rule, _Budgeted):
                self._seeded.discard(claim.key)
                plan.claims[index] = await self._budget_claim(rule, claim.amount, now)

    def _seeded_or_failed(self, key: str) -> Callable[[asyncio.Future[None]], None]:
        def done(seeding: asyncio.Future[None]) -> None:
            self._seeding.pop(key, None)
            if not seeding.cancelled():
                seeding.exception()  # its waiters report it; if they left, nobody must

        return done

    async def _seed(self, rule: _Budgeted, key: str, start: float, ttl: float) -> None:
        spent = await self._ledger.spent(rule.kind, rule.name, start)
        await self._counters.seed(key, spent, ttl)
        self._seeded.add(key)

    # -- admit and settle --

    async def _admit(self, ctx: CallContext, plan: _Plan, now: float) -> bool:
        try:
            try:
                decision = await self._counters.admit(plan.claims, now)
            except CounterUnseededError as exc:
                # The store lost a budget's spend (Redis restarted empty, or evicted
                # or failed over): read it from the ledger again, then decide.
                await self._reseed(plan, exc.keys, now)
                decision = await self._counters.admit(plan.claims, now)
        except (CounterUnavailableError, CounterUnseededError) as exc:
            self._unavailable(f"counter store unreachable: {exc}", hard=True)
            return False
        headers = _rate_headers(plan, decision.outcomes)
        for index, who, max_usd in plan.template.soft:
            if decision.outcomes[index].level > max_usd:
                self.soft_alerts += 1
                log.warning("soft budget of %s exceeded (%.4f USD)", who, max_usd)
                headers["x-gatehouse-budget-warning"] = f"soft budget of {who} exceeded"
        denied = decision.denied()
        if denied is None:
            ctx.response_headers.update(headers)
            plan.outcomes = decision.outcomes
            return True
        outcome = decision.outcomes[denied]
        claim, role = plan.claims[denied], plan.template.roles[denied]
        subject = claim.key.split(":", 1)[1]
        if role.startswith("budget"):
            ctx.refusal = "budget"
            raise BudgetExceededError(
                f"Budget exceeded for {subject}: this request could cost up to "
                f"{plan.max_cost:.6f} USD.",
                headers=headers,
                retry_after=outcome.retry_after,
            )
        ctx.refusal = "rate_limit"
        raise _rate_limited(claim, role, outcome, headers)

    async def admit_request(self, principal: Principal | None) -> dict[str, str]:
        """Count one request against the requests-per-minute limits of ``principal``'s
        key, user, team and organisation, for work a route does as the caller before
        a model call (rendering a stored prompt) or without one (counting tokens).
        A 429 when one is spent, else the ``x-ratelimit-*-requests`` headers. The
        call that follows, if any, sets ``CallContext.requests_admitted`` so that the
        request is not counted twice (a model's own limits still count it)."""
        if principal is None or principal.kind in ("local", "master"):
            return {}
        whole = await self._template(principal, "")
        rules = [
            rule
            for rule, role in zip(whole.rules, whole.roles, strict=True)
            if role == "requests" and isinstance(rule, Claim) and _callers(rule)
        ]
        if not rules:
            return {}
        template = _Template(
            rules=list(rules), roles=["requests"] * len(rules), requests_at=[*range(len(rules))]
        )
        try:
            decision = await self._counters.admit(rules, self._clock())
        except CounterUnavailableError as exc:
            self._unavailable(f"counter store unreachable: {exc}", hard=True)
            return {}
        headers = _rate_headers(_Plan(template, rules, 0.0), decision.outcomes)
        denied = decision.denied()
        if denied is not None:
            raise _rate_limited(rules[denied], "requests", decision.outcomes[denied], headers)
        return headers

    def _unavailable(self, message: str, hard: bool) -> None:
        self.counter_failures += 1
        if self._fail_open:
            log.warning("%s; admitting (fail_open)", message)
            return
        log.error("%s; rejecting (fail_closed)", message)
        if hard:
            raise ServiceUnavailableError("Limits cannot be checked right now; try again shortly.")

    async def _settle(self, ctx: CallContext, plan: _Plan, *, failed: bool) -> None:
        deltas: list[float] = []
        usage = None if failed else ctx.usage
        tokens = 0 if usage is None else usage.total_tokens
        cost = 0.0 if usage is None else ctx.charge(self._pricing)[1]
        for claim, role in zip(plan.claims, plan.template.roles, strict=True):
            if role == "requests":
                deltas.append(0.0)
            elif role == "tokens":
                deltas.append(tokens - claim.amount)
            elif role == "parallel":
                deltas.append(-1.0)
            else:
                deltas.append(cost - claim.amount)
        try:
            await self._counters.settle(plan.claims, deltas, self._clock())
        except CounterUnavailableError as exc:
            self.counter_failures += 1
            log.error("cannot settle counters for %s: %s", ctx.request_id, exc)
            return
        if self._budget_watch is not None and plan.outcomes:
            self._report_budgets(plan, deltas)

    def _report_budgets(self, plan: _Plan, deltas: list[float]) -> None:
        """Each budget's spend now: the level the admission saw, corrected by what
        the call really cost. Other calls' reservations in flight are in that
        level, so under concurrency it can run ahead of the settled spend."""
        assert self._budget_watch is not None
        for index in plan.template.budgets_at:
            rule = plan.template.rules[index]
            assert isinstance(rule, _Budgeted)
            budget = rule.budget
            window = self._windows.get(budget.period)
            if window is None:
                continue
            spend = BudgetSpend(
                rule.kind,
                rule.name,
                budget.period,
                plan.claims[index].key[len(rule.prefix) :],
                window[2],
                budget.max_usd,
                plan.outcomes[index].level + deltas[index],
                budget.hard,
            )
            try:
                self._budget_watch(spend)
            except Exception:
                log.exception("the budget watcher failed")

    async def _settle_after(
        self, ctx: CallContext, plan: _Plan, chunks: AsyncIterator[ChatCompletionChunk]
    ) -> ChatStream:
        failed = True
        try:
            async for chunk in chunks:
                yield chunk
            failed = False
        except (asyncio.CancelledError, GeneratorExit):
            # The client went away before the upstream's usage: the upstream bills
            # what it read and wrote, so settle on the estimate metering records.
            # Settling on nothing gave the whole reservation back, and a client
            # hanging up before [DONE] had every answer for free.
            ctx.estimate_abandoned_usage()
            raise
        finally:
            await self._settle(ctx, plan, failed=failed and ctx.usage is None)


def _callers(claim: Claim) -> bool:
    """A claim on the caller's key, user, team or organisation (not on the model)."""
    return not claim.key.startswith("rpm:model:")


def _rate_limited(
    claim: Claim, role: str, outcome: Outcome, headers: dict[str, str]
) -> RateLimitError:
    subject = claim.key.split(":", 1)[1]
    what = {"requests": "requests per minute", "tokens": "tokens per minute"}.get(
        role, "concurrent requests"
    )
    return RateLimitError(
        f"Rate limit reached for {subject}: {claim.limit:g} {what}.",
        headers=headers,
        retry_after=outcome.retry_after,
    )


def _limit_rules(template: _Template, kind: str, name: str, limits: LimitSpec) -> None:
    if limits.rpm is not None:
        template.requests_at.append(len(template.rules))
        template.rules.append(Claim("rate", f"rpm:{kind}:{name}", limits.rpm, 1, 60.0))
        template.roles.append("requests")
    if limits.tpm is not None:
        template.tokens_at.append(len(template.rules))
        template.rules.append((f"tpm:{kind}:{name}", limits.tpm))
        template.roles.append("tokens")
    if limits.max_parallel is not None:
        template.rules.append(
            Claim("gauge", f"par:{kind}:{name}", limits.max_parallel, 1, GAUGE_TTL)
        )
        template.roles.append("parallel")


_HEADER_NAMES = {
    role: tuple(f"x-ratelimit-{part}-{role}" for part in ("limit", "remaining", "reset"))
    for role in ("requests", "tokens")
}


def _rate_headers(plan: _Plan, outcomes: Sequence[Outcome]) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` headers, for the tightest requests and tokens limits."""
    headers: dict[str, str] = {}
    for role, positions in (
        ("requests", plan.template.requests_at),
        ("tokens", plan.template.tokens_at),
    ):
        if not positions:
            continue
        tightest = positions[0]
        for position in positions[1:]:
            if outcomes[position].remaining < outcomes[tightest].remaining:
                tightest = position
        outcome = outcomes[tightest]
        limit, remaining, reset = _HEADER_NAMES[role]
        headers[limit] = str(int(plan.claims[tightest].limit))
        headers[remaining] = str(int(outcome.remaining))
        headers[reset] = _duration(outcome.reset)
    return headers


def _duration(seconds: float) -> str:
    """OpenAI's reset format: ``0.5s``, ``6m0s``."""
    if seconds < 60:
        return f"{round(max(seconds, 0.0), 3):g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{round(rest):d}s"
