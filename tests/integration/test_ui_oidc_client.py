"""The OIDC client against a real provider over HTTP: each check of the flow refuses
what it should, for the reason it should (``OidcRefused.reason``)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from gatehouse.core.config import OidcConfig
from gatehouse.ui.oidc import (
    OidcClient,
    OidcRefused,
    OidcUnavailable,
    PendingLogin,
    pkce_challenge,
)

from .oidc_provider import OidcProvider

REDIRECT = "http://127.0.0.1:1/ui/oidc/callback"


@pytest.fixture
def idp(oidc_provider: OidcProvider) -> OidcProvider:
    oidc_provider.reset()
    return oidc_provider


def settings(idp: OidcProvider, **extra: object) -> OidcConfig:
    return OidcConfig.model_validate(
        {
            "issuer": idp.issuer,
            "client_id": idp.client_id,
            "client_secret": idp.client_secret,
            "roles": {"ops": "admin", "leads": "team_admin"},
            **extra,
        }
    )


async def sign_in(client: OidcClient) -> tuple[PendingLogin, str | None, str | None]:
    """Start a login, follow the provider's authorize redirect; the callback's state and code."""
    pending, url = await client.start(redirect_uri=REDIRECT, next="/ui/playground")
    async with httpx.AsyncClient() as http:
        answer = await http.get(url)
    assert answer.status_code == 302
    location = urlsplit(answer.headers["location"])
    assert f"http://{location.netloc}{location.path}" == REDIRECT
    query = parse_qs(location.query)
    return pending, query.get("state", [None])[0], query.get("code", [None])[0]


async def test_a_full_sign_in_yields_the_mapped_role_with_pkce_checked(idp: OidcProvider) -> None:
    idp.claims = {"sub": "u-7", "email": "ada@example.com", "groups": ["staff", "ops"]}
    client = OidcClient(settings(idp))
    pending, state, code = await sign_in(client)
    sent = idp.authorize_requests[-1]
    assert sent["code_challenge"] == pkce_challenge(pending.verifier)
    assert sent["code_challenge_method"] == "S256"
    assert sent["nonce"] == pending.nonce
    identity = await client.finish(pending, state=state, code=code, redirect_uri=REDIRECT)
    assert (identity.subject, identity.name, identity.role) == ("u-7", "ada@example.com", "admin")
    assert idp.token_requests[-1]["code_verifier"] == pending.verifier


async def test_team_admin_needs_a_team_and_nothing_mapped_is_a_viewer(idp: OidcProvider) -> None:
    client = OidcClient(settings(idp))
    idp.claims = {"sub": "u-2", "groups": ["leads"], "team": "search"}
    pending, state, code = await sign_in(client)
    lead = await client.finish(pending, state=state, code=code, redirect_uri=REDIRECT)
    assert (lead.role, lead.team) == ("team_admin", "search")
    idp.claims = {"sub": "u-3", "groups": ["leads"]}
    pending, state, code = await sign_in(client)
    teamless = await client.finish(pending, state=state, code=code, redirect_uri=REDIRECT)
    assert teamless.role == "viewer"
    idp.claims = {"sub": "u-4", "groups": "staff interns"}
    pending, state, code = await sign_in(client)
    plain = await client.finish(pending, state=state, code=code, redirect_uri=REDIRECT)
    assert (plain.role, plain.team) == ("viewer", None)


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ("state", "state does not match"),
        ("nonce", "nonce does not match"),
        ("expired", "expired"),
        ("signature", "signature does not verify"),
        ("audience", "audience"),
    ],
)
async def test_each_bad_sign_in_is_refused(idp: OidcProvider, tamper: str, reason: str) -> None:
    idp.tamper = tamper  # type: ignore[assignment]
    client = OidcClient(settings(idp))
    pending, state, code = await sign_in(client)
    with pytest.raises(OidcRefused) as refused:
        await client.finish(pending, state=state, code=code, redirect_uri=REDIRECT)
    assert reason in refused.value.reason.lower()
    assert refused.value.http_status == 401


async def test_a_wrong_verifier_or_a_reused_code_is_refused_by_the_provider(
    idp: OidcProvider,
) -> None:
    client = OidcClient(settings(idp))
    pending, state, code = await sign_in(client)
    forged = PendingLogin(pending.state, pending.nonce, "x" * 60, pending.next, pending.expires)
    with pytest.raises(OidcRefused, match="failed") as refused:
        await client.finish(forged, state=state, code=code, redirect_uri=REDIRECT)
    assert "400" in refused.value.reason
    with pytest.raises(OidcRefused):  # the code was spent by the failed attempt
        await client.finish(pending, state=state, code=code, redirect_uri=REDIRECT)


async def test_a_wrong_client_secret_is_refused(idp: OidcProvider) -> None:
    client = OidcClient(settings(idp, client_secret="not-it"))
    pending, state, code = await sign_in(client)
    with pytest.raises(OidcRefused) as refused:
        await client.finish(pending, state=state, code=code, redirect_uri=REDIRECT)
    assert "401" in refused.value.reason


async def test_discovery_must_name_the_configured_issuer(idp: OidcProvider) -> None:
    client = OidcClient(settings(idp, issuer=idp.issuer + "/"))
    with pytest.raises(OidcRefused, match="failed") as refused:
        await client.start(redirect_uri=REDIRECT, next="/ui")
    assert "names issuer" in refused.value.reason


async def test_an_unreachable_provider_is_unavailable_not_refused() -> None:
    client = OidcClient(OidcConfig(issuer="http://127.0.0.1:9", client_id="x"))
    with pytest.raises(OidcUnavailable) as down:
        await client.start(redirect_uri=REDIRECT, next="/ui")
    assert down.value.http_status == 503
