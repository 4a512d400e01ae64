"""The ASGI application factory. Nothing is built at import time."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from gatehouse import __version__
from gatehouse.core.config import ConfigSource, Settings
from gatehouse.core.errors import (
    GatehouseError,
    InvalidRequestError,
    MethodNotAllowedError,
    NotFoundError,
)
from gatehouse.core.pseudonyms import Pseudonyms
from gatehouse.gateway import Gateway, build_gateway
from gatehouse.gateway.observer import Observer, Observers
from gatehouse.gateway.trace_context import ClientContext, Tracer
from gatehouse.observability import AccessLog, DeploymentState, Metrics
from gatehouse.observability.alert_rules import BreakerCount
from gatehouse.observability.alerts import AlertNotifier
from gatehouse.observability.governance_metrics import GovernanceCollector
from gatehouse.observability.tracing import Tracing, start_tracing
from gatehouse.server.authz import PUBLIC
from gatehouse.server.fleet import fleet_for
from gatehouse.server.http import JSONResponse, error_response
from gatehouse.server.lifecycle import Lifecycle
from gatehouse.server.middleware import HotRoutes, RequestContextMiddleware
from gatehouse.server.openapi import build_openapi
from gatehouse.server.reload import SOURCE_ENV, Reloader
from gatehouse.server.roles import remote_gateway, serves, settings_for_role
from gatehouse.server.routes import (
    admin,
    anthropic,
    config_reload,
    deployments,
    health,
    observability,
    openai,
    privacy,
    prompts,
    rag,
    rerank,
    responses,
    tokens,
)
from gatehouse.server.routes.table import RawEndpoint, RouteSpec

SETTINGS_ENV = "GATEHOUSE_INTERNAL_SETTINGS_JSON"


def create_app(
    settings: Settings,
    *,
    gateway: Gateway | None = None,
    metrics: Metrics | None = None,
    tracing: Tracing | None = None,
    source: ConfigSource | None = None,
    signals: bool = False,
) -> Starlette:
    """Build the application: routes, error mapping and the request-id/body-limit layer.

    A ``gateway`` built by the caller reports to ``metrics`` (and writes an
    access log) only if it was built with them as its observer. ``tracing``
    (by default the one ``observability.tracing`` configures, if enabled)
    traces the gateway built here, and is shut down with the app.

    ``source`` is where ``settings`` came from, read again by a configuration
    reload (``POST /admin/config/reload``; SIGHUP with ``signals``). With
    ``signals`` (the server runner's app) SIGTERM drains first
    (:mod:`gatehouse.server.lifecycle`)."""
    settings = settings_for_role(settings)
    if tracing is None and settings.observability.tracing.enabled:
        tracing = start_tracing(settings.observability.tracing)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    metrics = metrics or Metrics(per_key=settings.observability.metrics.per_key)
    access_log: AccessLog | None = None
    alerts = AlertNotifier(settings.alerts) if settings.alerts.webhooks else None
    if gateway is None:
        observer: Observer = metrics
        access = settings.observability.access_log
        if access.enabled:
            access_log = AccessLog(
                format=access.format,
                pseudonyms=Pseudonyms(settings.privacy.pseudonym_secret),
            )
            observer = Observers([metrics, access_log])
        if alerts is not None:
            observer = Observers([observer, alerts])
        gateway = build_gateway(
            settings,
            started_at=int(time.time()),
            observer=observer,
            tracer=_tracer(settings, tracing),
        )
    metrics.watch_deployments(lambda: deployment_states(gateway))
    metrics.name_models(gateway.registry)
    if access_log is not None:
        logged = access_log
        metrics.watch_counter(
            "gatehouse_access_log_dropped",
            "Access log lines dropped because the output could not keep up.",
            lambda: logged.dropped,
        )
    if gateway.governance is not None:
        metrics.registry.register(GovernanceCollector(gateway.governance.stats))
    if alerts is not None:
        _feed_alerts(alerts, gateway, settings)
        metrics.registry.register(alerts.collector())
    specs = [
        *openai.ROUTES,
        *anthropic.ROUTES,
        *tokens.ROUTES,
        *rerank.ROUTES,
        *responses.ROUTES,
        *deployments.ROUTES,
        *health.ROUTES,
        *observability.ROUTES,
        *admin.ROUTES,
        *config_reload.ROUTES,
        *privacy.ROUTES,
        *prompts.ROUTES,
        *rag.ROUTES,
    ]
    if settings.ui.enabled:
        # Imported here: the dashboard's modules import the server's route table.
        from gatehouse.ui.routes import ROUTES as UI_ROUTES
        from gatehouse.ui.state import build_ui

        specs.extend(UI_ROUTES)
    specs = [spec for spec in specs if serves(settings.server.role, spec)]
    remote = remote_gateway(settings)
    document: dict[str, Any] = {}

    async def openapi_json(request: Request) -> Response:
        if not document:  # built on first use: start-up pays nothing for it
            document.update(build_openapi(specs, title="gatehouse", version=__version__))
        return JSONResponse(document)

    specs.append(
        RouteSpec(
            "GET", "/openapi.json", openapi_json, summary="This OpenAPI document", scope=PUBLIC
        )
    )

    lifecycle = Lifecycle(shutdown_delay=settings.server.shutdown_delay_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        if alerts is not None:
            await alerts.start()
        _settle_heap()
        if signals:
            lifecycle.install(reload=reloader.reload_logged)
        if fleet is not None:
            await fleet.start()
        try:
            yield
        finally:
            lifecycle.uninstall()
            if fleet is not None:
                await fleet.stop()
            if alerts is not None:
                await alerts.stop()
            await gateway.stop()
            if access_log is not None:
                await asyncio.to_thread(access_log.close)
            if tracing is not None:
                await asyncio.to_thread(tracing.shutdown)
            if remote is not None:
                await remote.aclose()

    app = Starlette(
        lifespan=lifespan,
        routes=[spec.route() for spec in specs],
        # Inside Starlette's own error layer, so that our handler answers
        # unexpected failures in the OpenAI shape with the request id.
        middleware=[
            Middleware(
                RequestContextMiddleware,
                max_body_bytes=settings.server.max_body_bytes,
                lifecycle=lifecycle,
                error_shapes={spec.path: spec.error_shape for spec in specs if spec.error_shape},
            ),
            Middleware(HotRoutes, routes=_hot_routes(specs)),
        ],
        exception_handlers={
            GatehouseError: _gatehouse_error,
            HTTPException: _http_error,
        },
    )
    app.state.gateway = gateway
    app.state.remote_gateway = remote  # role rag: where its model calls go
    app.state.metrics = metrics
    app.state.access_log = access_log
    app.state.tracing = tracing
    app.state.settings = settings
    app.state.data_dir = settings.data_dir
    if settings.ui.enabled:
        app.state.ui = build_ui(settings)
    app.state.lifecycle = lifecycle
    app.state.reloader = reloader = Reloader(app.state, source)
    # With Redis, a reload asked here reaches every replica (gatehouse.server.fleet).
    app.state.fleet = fleet = fleet_for(settings, source, reloader.reload)
    return app


def _tracer(settings: Settings, tracing: Tracing | None) -> Tracer | None:
    """Spans when tracing is on; else the client's trace context passed on, unless
    turned off (gatehouse.gateway.trace_context)."""
    if tracing is not None:
        from gatehouse.gateway.tracing import SpanTracer  # needs the 'otel' extra

        return SpanTracer(tracing.tracer)
    if settings.observability.tracing.propagate_client_context:
        return ClientContext()
    return None


def _settle_heap() -> None:
    """Move everything built at start-up out of the garbage collector's way.

    Configuration, pydantic schemas, SQLAlchemy metadata and the like live as
    long as the process; frozen, they are never traversed again. The young
    generation's threshold is raised from 700 allocations so that a request's
    short-lived objects are mostly freed by reference counting before a
    collection runs. Together: about 10% of the gateway's time per request.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def _hot_routes(specs: list[RouteSpec]) -> dict[str, RawEndpoint]:
    return {spec.path: spec.guarded() for spec in specs if spec.raw and spec.method == "POST"}


def create_app_from_environment() -> Starlette:
    """Factory for multi-worker serving: each worker rebuilds the app from settings
    the parent process validated and passed down as JSON."""
    source = os.environ.get(SOURCE_ENV)
    return create_app(
        Settings.model_validate_json(os.environ[SETTINGS_ENV]),
        source=ConfigSource.from_json(source) if source is not None else None,
        signals=True,
    )


def deployment_states(gateway: Gateway) -> Iterator[DeploymentState]:
    """Live deployment state for the metrics scrape."""
    now = time.monotonic()
    for group in gateway.registry.groups():
        for d in group.deployments:
            yield DeploymentState(
                deployment=d.id,
                group=group.name,
                in_flight=d.in_flight,
                breaker=d.breaker.state(now),
                admission_limit=d.capacity.limit,
                queued=d.capacity.queued,
                rejected=d.capacity.rejected,
                latency_s=d.stats.hold,
            )


def _feed_alerts(alerts: AlertNotifier, gateway: Gateway, settings: Settings) -> None:
    """Connect the alert sources a gateway has: budgets, breakers, the outbox.
    (Error rates come as an observer, wired where the gateway is built.)"""
    alerts.watch_breakers(lambda: breaker_counts(gateway))
    governance = gateway.governance
    if governance is None:
        return
    governance.limits.watch_budgets(alerts.budget_spent)
    alerts.watch_backlog(lambda: governance.shipper.backlog)
    if settings.store.redis_url is not None:
        alerts.dedupe_with(governance.claim_once)


def breaker_counts(gateway: Gateway) -> Iterator[BreakerCount]:
    """How often each deployment's breaker has opened, for breaker alerts."""
    for group in gateway.registry.groups():
        for d in group.deployments:
            yield BreakerCount(group.name, d.id, d.breaker.openings)


async def _gatehouse_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatehouseError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error: GatehouseError
    if exc.status_code == 404:
        error = NotFoundError(f"No route for {request.method} {request.url.path}.")
    elif exc.status_code == 405:
        error = MethodNotAllowedError(
            f"Method {request.method} is not allowed on {request.url.path}."
        )
    else:
        error = InvalidRequestError(str(exc.detail), status=exc.status_code)
    return error_response(error)
