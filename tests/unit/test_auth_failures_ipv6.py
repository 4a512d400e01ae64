"""The failed-authentication limiter counts an IPv6 client by its /64 network.

One IPv6 client is handed a /64 (2^64 addresses) by its provider and picks
any address in it at will: counted per address, every refused credential could
come from a fresh one, and the limit would never be reached."""

from __future__ import annotations

from gatehouse.core.config import FailedAttemptsConfig
from gatehouse.gateway.auth_failures import FailedAuthLimiter, client_address
from gatehouse.store.counters import MemoryCounters

from .governed import FakeClock


def _scope(address: str) -> dict[str, object]:
    return {"type": "http", "client": (address, 5000)}


def test_an_ipv6_client_is_its_64_network() -> None:
    one = client_address(_scope("2001:db8:0:7::1"))
    assert one == client_address(_scope("2001:db8:0:7:ffff:ffff:ffff:fffe"))
    assert one == client_address(_scope("2001:0db8:0000:0007:0000:0000:0000:0002"))
    assert one != client_address(_scope("2001:db8:0:8::1"))
    assert one == "2001:db8:0:7::/64"
    # An IPv4 client seen on a dual-stack socket is its IPv4 address, as on an IPv4 one.
    assert client_address(_scope("::ffff:192.0.2.7")) == "192.0.2.7"
    assert client_address(_scope("192.0.2.7")) == "192.0.2.7"
    assert client_address(_scope("not an address")) == "not an address"


async def test_fresh_addresses_of_one_network_share_its_limit() -> None:
    limiter = FailedAuthLimiter(
        MemoryCounters(),
        FailedAttemptsConfig(api_per_address=3, api_window_seconds=60),
        clock=FakeClock(),
        fail_open=False,
    )
    for n in range(1, 4):
        assert await limiter.api_failed(client_address(_scope(f"2001:db8::{n}"))) is None
    assert await limiter.api_failed(client_address(_scope("2001:db8::4"))) is not None
    # Refused from any address of the network, before anything it sends is checked.
    assert limiter.refusal(_scope("2001:db8::abcd")) is not None
    assert limiter.refusal(_scope("2001:db8:1::1")) is None
