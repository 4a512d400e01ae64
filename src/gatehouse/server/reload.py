"""Configuration reload without a restart: read the configuration again, apply what can be.

The server keeps where its settings came from (a ``ConfigSource``: the
config file, the environment and the command-line flags). A reload, asked by
SIGHUP or by ``POST /admin/config/reload``, reads them again and validates
the whole; if that fails, or the new model groups cannot be built, nothing
changes and the error says why. Otherwise the gateway takes on the sections
it can change while serving (routing, prices, limits, guard policies: see
:data:`~gatehouse.gateway.wiring.RELOADABLE_SECTIONS`) and the others are
reported as needing a restart.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from pydantic import BaseModel
from starlette.datastructures import State

from gatehouse.core.config import ConfigSource, Settings
from gatehouse.core.errors import ConfigError, ConflictError, InvalidRequestError
from gatehouse.gateway import Gateway
from gatehouse.gateway.wiring import changed_sections
from gatehouse.server.roles import settings_for_role

log = logging.getLogger("gatehouse.server")

SOURCE_ENV = "GATEHOUSE_INTERNAL_CONFIG_SOURCE"


class ReloadResult(BaseModel):
    """What a configuration reload did."""

    status: Literal["applied", "unchanged"]
    applied: list[str]  # sections now served from the new configuration
    restart_required: list[str]  # sections that changed but apply only at the next start
    models: list[str]  # the model names served from now on


class Reloader:
    """Reads the configuration again and hands the gateway what it can take on."""

    def __init__(self, state: State, source: ConfigSource | None) -> None:
        self._state = state  # the app's: its gateway, metrics and current settings
        self._source = source
        self._lock = asyncio.Lock()

    async def reload(self) -> ReloadResult:
        """Apply the configuration as it is now; raises ``InvalidRequestError`` (422
        ``invalid_config``, nothing changed) when it does not validate or cannot
        be built, ``ConflictError`` when there is no source to read."""
        if self._source is None:
            raise ConflictError(
                "This server was not started by 'gatehouse serve': it has no configuration "
                "to read again."
            )
        async with self._lock:  # one reload at a time, each against the last applied
            current: Settings = self._state.settings
            try:
                # As this process's role runs them (a RAG service serves no models).
                new = settings_for_role(await asyncio.to_thread(self._source.load))
            except ConfigError as exc:
                raise _refused(exc) from None
            applied, restart_required = changed_sections(current, new)
            if applied:
                merged = current.model_copy(update={name: getattr(new, name) for name in applied})
                gateway: Gateway = self._state.gateway
                try:
                    await gateway.reconfigure(merged)
                except ConfigError as exc:
                    raise _refused(exc) from None
                self._state.settings = merged
                self._state.metrics.name_models(gateway.registry)
            result = ReloadResult(
                status="applied" if applied else "unchanged",
                applied=applied,
                restart_required=restart_required,
                models=[entry.name for entry in self._state.gateway.registry.entries()],
            )
        if applied:
            log.info("configuration reloaded: %s now served anew", ", ".join(applied))
        else:
            log.info("configuration reloaded: nothing a reload applies has changed")
        if restart_required:
            log.warning(
                "configuration reload: %s changed but apply only after a restart",
                ", ".join(restart_required),
            )
        return result

    async def reload_logged(self) -> None:
        """:meth:`reload` for SIGHUP: a refused configuration is logged, the old one stays."""
        try:
            await self.reload()
        except (InvalidRequestError, ConflictError) as exc:
            log.error("SIGHUP: configuration not reloaded, the old one stays: %s", exc.message)


def _refused(exc: ConfigError) -> InvalidRequestError:
    detail = str(exc).replace("\n", "; ")
    return InvalidRequestError(
        f"The configuration was not reloaded (the old one stays): {detail}",
        code="invalid_config",
        status=422,
    )
