"""FireHOL blocklists on the real snapshot in /work/shared/data."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from cerana.analyzers.base import AnalyzerError, Observable
from cerana.analyzers.firehol import FireHOLBlocklists, load_index

SNAPSHOT = Path("/work/shared/data/firehol-ipsets")


@pytest.fixture(scope="module")
def small_lists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("firehol")
    (folder / "tiny.ipset").write_text(
        "#\n# tiny\n# Source File Date: Tue Jan 23 08:55:02 UTC 2024\n#\n1.2.3.4\n1.2.3.5\n"
    )
    (folder / "nets.netset").write_text(
        "# nets\n10.0.0.0/8\n2001:db8::/32\n192.168.1.0/24\n"
    )
    (folder / "ignored.txt").write_text("1.2.3.4\n")
    return folder


def test_exact_addresses_and_networks_match(small_lists: Path) -> None:
    index = load_index(small_lists)

    assert [b.name for b in index.lookup("1.2.3.4")] == ["tiny"]
    assert [b.name for b in index.lookup("10.20.30.40")] == ["nets"]
    assert [b.name for b in index.lookup("2001:db8::1")] == ["nets"]
    # Cortex's substring test would call these hits; they are not.
    assert index.lookup("11.2.3.45") == [] and index.lookup("1.2.3.40") == []


def test_the_report_and_summary_match_cortex(small_lists: Path) -> None:
    analyzer = FireHOLBlocklists()

    report = analyzer.run(
        Observable("ip", "1.2.3.5"), {"blocklistpath": str(small_lists)}
    )

    assert report.full["count"] == 1
    assert report.full["hits"][0]["list"] == "tiny"
    assert report.full["hits"][0]["file_date"] == "2024-01-23 08:55:02+00:00"
    assert report.taxonomies[0].to_json() == {
        "level": "suspicious",
        "namespace": "Firehol",
        "predicate": "Blocklists",
        "value": "1 hit",
    }


def test_old_lists_are_ignored_when_asked(small_lists: Path) -> None:
    index = load_index(small_lists, ignore_older_than_days=30)

    assert [b.name for b in index.lookup("1.2.3.4")] == []


@pytest.mark.parametrize("value", ["1.2.3.0/24", "not-an-ip"], ids=["cidr", "garbage"])
def test_a_bad_value_is_refused(small_lists: Path, value: str) -> None:
    with pytest.raises(AnalyzerError):
        FireHOLBlocklists().run(
            Observable("ip", value), {"blocklistpath": str(small_lists)}
        )


def test_the_real_snapshot_loads_once_and_answers_in_under_a_millisecond() -> None:
    started = time.perf_counter()
    index = load_index(SNAPSHOT)
    load_seconds = time.perf_counter() - started
    rng = random.Random(6)
    ips = [
        ".".join(str(rng.randint(1, 223 if i == 0 else 255)) for i in range(4))
        for _ in range(2000)
    ]

    started = time.perf_counter()
    for ip in ips:
        index.lookup(ip)
    per_lookup = (time.perf_counter() - started) / len(ips)

    print(
        f"firehol: {len(index.lists)} lists, {index.entries} entries, "
        f"load {load_seconds:.1f} s, lookup {per_lookup * 1e6:.0f} µs"
    )
    assert len(index.lists) == 315 and index.entries == 2_182_613
    assert {b.name for b in index.lookup("1.10.16.5")} >= {
        "firehol_level1",
        "spamhaus_drop",
    }
    assert per_lookup < 0.001
