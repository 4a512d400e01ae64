from gatehouse.gateway.routing import CircuitBreaker


def test_opens_after_n_failures_in_the_window_and_probes_once() -> None:
    breaker = CircuitBreaker(failures=3, window=10, cooldown=5)
    for t in (0.0, 1.0):
        breaker.on_failure(t)
    assert breaker.can_try(1.5)
    breaker.on_failure(2.0)
    assert breaker.state(2.0) == "open"
    assert not breaker.can_try(6.9)
    assert breaker.state(7.0) == "half_open"
    assert breaker.can_try(7.0)
    breaker.on_attempt(7.0)
    assert not breaker.can_try(7.1)  # only one probe at a time
    breaker.on_success()
    assert breaker.state(7.2) == "closed"


def test_failed_probe_reopens_for_a_full_cooldown() -> None:
    breaker = CircuitBreaker(failures=1, window=10, cooldown=5)
    breaker.on_failure(0.0)
    breaker.on_attempt(5.0)
    breaker.on_failure(5.5)
    assert breaker.state(10.4) == "open"
    assert breaker.state(10.5) == "half_open"


def test_old_failures_leave_the_window() -> None:
    breaker = CircuitBreaker(failures=2, window=10, cooldown=5)
    breaker.on_failure(0.0)
    breaker.on_failure(11.0)
    assert breaker.state(11.0) == "closed"
    assert breaker.recent_failures(11.0) == 1


def test_neutral_outcome_releases_the_probe() -> None:
    breaker = CircuitBreaker(failures=1, window=10, cooldown=1)
    breaker.on_failure(0.0)
    breaker.on_attempt(1.0)
    breaker.on_neutral()
    assert breaker.can_try(1.0)
