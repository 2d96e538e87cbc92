"""Concurrent writers and readers: one winner per etag; readers see only committed states."""

from __future__ import annotations

import threading

from modelconfig import EtagMismatch


def test_two_writers_with_one_etag_cannot_both_win(daemon):
    client = daemon.client
    for round_ in range(5):
        etag = client.resolve_for_account("acme").etag
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def write(model: str, etag=etag, barrier=barrier, outcomes=outcomes) -> None:
            barrier.wait()
            try:
                client.set_model("openai_model", model, account_id="acme", etag=etag)
                outcomes.append("won")
            except EtagMismatch:
                outcomes.append("aborted")

        # Alternate the pair so each round is a real change from the round before.
        models = ("gpt-3.5-turbo", "gpt-4-turbo-2024-04-09")
        threads = [threading.Thread(target=write, args=(m,)) for m in models]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["aborted", "won"], f"round {round_}: {outcomes}"
        client.clear_account_model("acme", "openai_model")


def test_readers_see_only_committed_states_while_writes_race(daemon):
    client = daemon.client
    committed: dict[int, str] = {}
    observed: list[tuple[int, str, str]] = []
    stop = threading.Event()

    def writer() -> None:
        models = ["gpt-3.5-turbo", "gpt-4-turbo-2024-04-09"]
        for i in range(40):
            reply = client.set_model("openai_model", models[i % 2], account_id="acme")
            committed[reply.revision] = reply.setting.model.model_name
        stop.set()

    def reader() -> None:
        while not stop.is_set():
            r = client.resolve_for_account("acme", ["openai_model"])
            observed.append((r.revision, r.etag, r.slots[0].model.model_name))

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(committed) == 40
    start = min(committed) - 1
    # The readers really overlapped the writes (else this test would prove nothing).
    assert observed and any(revision > start for revision, _, _ in observed)
    for revision, etag, model in observed:
        if revision == start:
            assert model == "gpt-4o-mini" and etag == "a0"
            continue
        # Every state a reader saw is exactly one that a write committed, never a mix.
        assert committed[revision] == model, (revision, model)
        assert etag == f"a{revision}"
