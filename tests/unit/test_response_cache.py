"""The per-snapshot answer cache never serves an answer computed for another snapshot."""

from modelconfigd.entrypoints.response_cache import ResponseCache


class Clock:
    """Stands in for the live snapshot: `current` is whatever State object is published."""

    def __init__(self) -> None:
        self.current = object()


def test_answers_are_kept_for_the_snapshot_they_were_computed_in():
    live = Clock()
    cache = ResponseCache(lambda: live.current)
    answer, state = cache.get(b"q")
    assert answer is None
    cache.put(b"q", b"a1", state)
    assert cache.get(b"q")[0] == b"a1"


def test_a_new_snapshot_empties_the_cache():
    live = Clock()
    cache = ResponseCache(lambda: live.current)
    _, state = cache.get(b"q")
    cache.put(b"q", b"a1", state)
    live.current = object()
    assert cache.get(b"q")[0] is None


def test_an_answer_from_a_snapshot_replaced_meanwhile_is_not_kept():
    live = Clock()
    cache = ResponseCache(lambda: live.current)
    _, state = cache.get(b"q")
    live.current = object()  # a write published a new snapshot while the answer was computed
    cache.put(b"q", b"stale", state)
    assert cache.get(b"q")[0] is None


def test_the_cache_is_bounded():
    live = Clock()
    cache = ResponseCache(lambda: live.current)
    _, state = cache.get(b"")
    for i in range(ResponseCache.MAX_ENTRIES + 1):
        cache.put(str(i).encode(), b"a", state)
    assert cache.get(b"0")[0] is None
    assert cache.get(str(ResponseCache.MAX_ENTRIES).encode())[0] == b"a"
