"""The per-snapshot wire cache never serves bytes computed for another snapshot."""

from modelconfigd.entrypoints.wire_cache import WireCache


class Live:
    """Stands in for the live snapshot: `current` is whatever State object is published."""

    def __init__(self) -> None:
        self.current = object()


def test_answers_are_kept_for_the_snapshot_they_were_computed_in():
    live = Live()
    cache = WireCache(lambda: live.current)
    answer, wire = cache.get(b"q")
    assert answer is None and wire.state is live.current
    cache.put(b"q", b"a1", wire)
    assert cache.get(b"q")[0] == b"a1"


def test_a_new_snapshot_starts_over():
    live = Live()
    cache = WireCache(lambda: live.current)
    _, wire = cache.get(b"q")
    cache.put(b"q", b"a1", wire)
    wire.piece("frame", lambda: b"f1")
    live.current = object()
    answer, fresh = cache.get(b"q")
    assert answer is None and fresh is not wire
    assert fresh.piece("frame", lambda: b"f2") == b"f2"


def test_an_answer_from_a_snapshot_replaced_meanwhile_is_not_kept():
    live = Live()
    cache = WireCache(lambda: live.current)
    _, wire = cache.get(b"q")
    live.current = object()  # a write published a new snapshot while the answer was computed
    cache.put(b"q", b"stale", wire)
    assert cache.get(b"q")[0] is None


def test_pieces_for_an_older_snapshot_are_never_shared():
    live = Live()
    cache = WireCache(lambda: live.current)
    old_state = live.current
    current = cache.current()
    current.piece("frame", lambda: b"new")
    assert cache.of(live.current) is current
    live.current = object()
    cache.current()
    # A call still holding the old State gets a wire of its own, not the current one's pieces.
    assert cache.of(old_state).piece("frame", lambda: b"old") == b"old"


def test_pieces_are_built_once():
    live = Live()
    wire = WireCache(lambda: live.current).current()
    built = []
    for _ in range(3):
        wire.piece("k", lambda: built.append(1) or b"v")
    assert built == [1]


def test_the_answers_are_bounded():
    live = Live()
    cache = WireCache(lambda: live.current)
    _, wire = cache.get(b"")
    for i in range(WireCache.MAX_ANSWERS + 1):
        cache.put(str(i).encode(), b"a", wire)
    assert cache.get(b"0")[0] is None
    assert cache.get(str(WireCache.MAX_ANSWERS).encode())[0] == b"a"
