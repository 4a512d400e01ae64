from gatehouse.providers.local.stops import StopMatcher


def feed_all(matcher: StopMatcher, pieces: list[str]) -> str:
    out = "".join(matcher.feed(p) for p in pieces)
    return out + matcher.flush()


def test_no_stops_passes_everything_through() -> None:
    assert feed_all(StopMatcher([]), ["a", "b", "c"]) == "abc"


def test_stop_inside_one_piece_cuts_before_it() -> None:
    matcher = StopMatcher(["END"])
    assert feed_all(matcher, ["hello END world"]) == "hello "
    assert matcher.stopped


def test_stop_split_across_pieces_is_found() -> None:
    matcher = StopMatcher(["\n\n"])
    assert matcher.feed("one\n") == "one"  # the newline might start the stop
    assert matcher.feed("\ntwo") == ""
    assert matcher.stopped


def test_held_back_prefix_is_released_when_it_cannot_match() -> None:
    matcher = StopMatcher(["STOP"])
    assert matcher.feed("ST") == ""
    assert matcher.feed("ART") == "START"
    assert not matcher.stopped


def test_earliest_of_several_stops_wins() -> None:
    matcher = StopMatcher(["zz", "b"])
    assert feed_all(matcher, ["a", "bzz"]) == "a"
    assert matcher.matched == "b"  # named in the answer (Anthropic's stop_sequence)


def test_nothing_is_matched_until_a_stop_is_found() -> None:
    matcher = StopMatcher(["STOP"])
    assert matcher.feed("go ST") == "go "
    assert matcher.matched is None
    matcher.feed("OP")
    assert matcher.matched == "STOP"


def test_flush_releases_trailing_partial_match() -> None:
    matcher = StopMatcher(["STOP"])
    assert matcher.feed("go ST") == "go "
    assert matcher.flush() == "ST"


def test_text_is_never_lost_or_duplicated() -> None:
    text = "the quick brown fox jumps over the lazy dog"
    for size in range(1, 6):
        pieces = [text[i : i + size] for i in range(0, len(text), size)]
        assert feed_all(StopMatcher(["lazy cat", "xyz"]), pieces) == text
