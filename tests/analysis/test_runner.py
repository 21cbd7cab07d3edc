"""External analyzers run as real processes, well-behaved or not."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from cerana.analysis import runner
from cerana.analysis.catalog import Catalog


def _run(
    catalog: Catalog, name: str, data: str, tmp_path: Path, **options: float
) -> runner.Outcome:
    entry = catalog.get(name)
    document = {
        "data": data,
        "dataType": "other",
        "tlp": 2,
        "pap": 2,
        "message": "",
        "parameters": {},
        "config": {"key": "k-123456", **entry.config},
    }
    return runner.run_external(
        f"job-{name}",
        entry,
        document,
        tmp_path / "job",
        file=None,
        timeout=options.get("timeout", 20.0),
        output_limit=int(options.get("limit", 1024 * 1024)),
    )


def test_a_cortexutils_analyzer_runs_in_job_folder_mode(
    catalog: Catalog, tmp_path: Path
) -> None:
    outcome = _run(catalog, "Echo", "1.2.3.4", tmp_path)

    assert outcome.success, outcome.error
    assert outcome.full == {"echo": "1.2.3.4", "has_key": True, "service": "echo"}
    assert outcome.summary["taxonomies"][0]["level"] == "malicious"
    assert [a["dataType"] for a in outcome.artifacts] == ["ip", "domain", "file"]
    assert set(outcome.files) == {outcome.artifacts[2]["file"]}


def test_an_old_analyzer_reads_stdin_and_answers_on_stdout(
    catalog: Catalog, tmp_path: Path
) -> None:
    outcome = _run(catalog, "Legacy", "abc", tmp_path)

    assert outcome.success, outcome.error
    assert outcome.full == {"legacy": "abc"}


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Malformed", "analyzer report is not valid JSON"),
        ("Crash", "analyzer exploded on purpose"),
        ("BadFull", "'full' must be a JSON object"),
    ],
    ids=["malformed-output", "crash", "full-not-an-object"],
)
def test_a_bad_analyzer_fails_with_a_clear_message(
    catalog: Catalog, tmp_path: Path, name: str, message: str
) -> None:
    outcome = _run(catalog, name, "x", tmp_path)

    assert not outcome.success
    assert message in outcome.error


def test_a_never_ending_analyzer_is_killed_with_its_children(
    catalog: Catalog, tmp_path: Path
) -> None:
    started = time.monotonic()

    outcome = _run(catalog, "Forever", "x", tmp_path, timeout=1.0)

    assert "did not finish within 1 s" in outcome.error
    assert time.monotonic() - started < 5
    assert not _processes_running_in(tmp_path / "job")


def test_a_flooding_analyzer_is_stopped_at_the_output_limit(
    catalog: Catalog, tmp_path: Path
) -> None:
    started = time.monotonic()

    outcome = _run(catalog, "Flood", "x", tmp_path, limit=256 * 1024)

    assert "wrote more than 262144 bytes" in outcome.error
    assert time.monotonic() - started < 5


def test_a_bad_analyzer_does_not_disturb_a_good_one(
    catalog: Catalog, tmp_path: Path
) -> None:
    outcomes: dict[str, runner.Outcome] = {}

    def run(name: str) -> None:
        outcomes[name] = _run(catalog, name, "1.2.3.4", tmp_path / name, timeout=2.0)

    threads = [
        threading.Thread(target=run, args=(n,)) for n in ("Flood", "Forever", "Echo")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes["Echo"].success
    assert not outcomes["Flood"].success and not outcomes["Forever"].success


def _processes_running_in(job_dir: Path) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if str(job_dir).encode() in cmdline:
            found.append(int(pid))
    return found


def test_native_analyzer_threads_are_reused_once_idle() -> None:
    pool = runner._ThreadPool(idle_seconds=5.0)
    seen: list[threading.Thread] = []
    done = threading.Event()

    def work() -> None:
        seen.append(threading.current_thread())
        done.set()

    for _ in range(3):
        done.clear()
        pool.submit(work)
        assert done.wait(5)
        time.sleep(0.05)  # the thread goes back to idle

    assert len(seen) == 3
    assert len(set(seen)) == 1


def test_a_stuck_native_analyzer_does_not_hold_up_the_next_one() -> None:
    pool = runner._ThreadPool(idle_seconds=5.0)
    release, second_ran = threading.Event(), threading.Event()

    pool.submit(lambda: release.wait(10))
    pool.submit(second_ran.set)

    assert second_ran.wait(5)
    release.set()


def test_an_idle_native_analyzer_thread_leaves() -> None:
    pool = runner._ThreadPool(idle_seconds=0.05)
    ran: list[threading.Thread] = []

    pool.submit(lambda: ran.append(threading.current_thread()))
    time.sleep(0.05)
    ran[0].join(timeout=5)

    assert not ran[0].is_alive()
    assert pool._idle == 0
