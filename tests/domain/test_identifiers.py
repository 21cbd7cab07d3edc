"""Record ids: TheHive's length and alphabet, unique, in creation order."""

from __future__ import annotations

import re
import time

from cerana.domain.identifiers import new_id, new_ids

URL_SAFE_20 = re.compile(r"[A-Za-z0-9_-]{20}")


def test_ids_are_twenty_url_safe_characters_and_unique() -> None:
    ids = new_ids(10_000) + [new_id() for _ in range(1_000)]
    assert all(URL_SAFE_20.fullmatch(i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_ids_made_later_sort_after_earlier_ones() -> None:
    first = new_ids(50)
    time.sleep(0.002)
    second = new_id()
    time.sleep(0.002)
    third = new_ids(50)
    assert max(first) < second < min(third)


def test_ids_of_one_batch_share_their_time_part_and_differ_in_the_rest() -> None:
    batch = new_ids(100)
    assert len({i[:8] for i in batch}) == 1
    assert len({i[8:] for i in batch}) == 100


def test_the_time_part_encodes_milliseconds_in_order_across_alphabet_edges() -> None:
    # ASCII order must follow the numeric order of the timestamp, including
    # where base64's alphabet wraps ('Z' to 'a', 'z' to '0', '9' to '-').
    before = time.time_ns() // 1_000_000
    made = new_id()
    after = time.time_ns() // 1_000_000
    alphabet = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
    assert sorted(alphabet) == list(alphabet)
    value = 0
    for char in made[:8]:
        value = value * 64 + alphabet.index(char)
    assert before <= value <= after
