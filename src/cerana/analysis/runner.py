"""Runs one analyzer on one job: native in a thread, external in a process.

External analyzers follow Cortex 3's job-folder protocol: the engine writes
``<job>/input/input.json`` (and the observable's file beside it), runs
``<command> <job>`` from the analyzers root in a new session, and reads
``<job>/output/output.json``. The same input is written to the process's
stdin, and when no output file appears stdout is read as the report: that
is how Cortex 1 and 2 ran analyzers, and cortexutils 1.x still expects it.

What a misbehaving analyzer can do is bounded:

- it runs at most the job timeout; then its whole process group is
  killed (SIGTERM, then SIGKILL), grandchildren included;
- stdout and stderr are read by threads, kept up to the output limit; more
  kills the group, so a flood costs neither memory nor a stuck pipe;
- the output document is size-checked before parsing and validated like
  Cortex does (``full`` an object, artifact keys, files inside ``output/``).

Every failure becomes an `Outcome` with a message saying what happened.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from cerana.analysis.catalog import CatalogEntry
from cerana.analyzers.base import AnalyzerError, Observable, Report

logger = logging.getLogger(__name__)

_ARTIFACT_KEYS = {"dataType", "data", "message", "tags", "tlp", "file", "filename"}
_ARTIFACT_KEYS |= {"contentType", "ioc", "sighted"}
_KILL_GRACE_SECONDS = 2.0


@dataclass
class Outcome:
    """What a run produced: a report, or an error message."""

    success: bool
    full: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    operations: list[Any] = field(default_factory=list)
    error: str = ""
    # file artifacts: name in the output folder → path, to be stored
    files: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def failure(cls, message: str) -> Outcome:
        return cls(success=False, error=message)


# Processes running in this worker, by job id, so a cancel can kill them.
_RUNNING: dict[str, subprocess.Popen[bytes]] = {}
_RUNNING_LOCK = threading.Lock()


def kill_running(job_id: str) -> bool:
    """Kills the process group of job ``job_id`` if it runs in this process."""
    with _RUNNING_LOCK:
        process = _RUNNING.get(job_id)
    if process is None:
        return False
    _kill_group(process, signal.SIGKILL)
    return True


def run_native(
    entry: CatalogEntry,
    observable: Observable,
    config: Mapping[str, Any],
    timeout: float,
) -> Outcome:
    """Runs a native analyzer with a deadline."""
    assert entry.native is not None
    analyzer = entry.native
    future: Future[Report] = Future()

    def work() -> None:
        try:
            future.set_result(analyzer.run(observable, config))
        except BaseException as exc:  # handed to the caller below
            future.set_exception(exc)

    # Limitation: a native analyzer past its timeout is abandoned, not
    # stopped, because Python threads cannot be killed; its job fails on
    # time all the same (#6).
    _NATIVE_THREADS.submit(work)
    try:
        report = future.result(timeout=timeout)
    except TimeoutError:
        return Outcome.failure(f"analyzer did not finish within {timeout:g} s")
    except AnalyzerError as exc:
        return Outcome.failure(str(exc))
    except Exception:
        logger.exception("native analyzer %s raised", entry.id)
        return Outcome.failure(f"analyzer {entry.id} failed with an internal error")
    return Outcome(
        success=True,
        full=dict(report.full),
        summary={"taxonomies": [t.to_json() for t in report.taxonomies]},
        artifacts=[a.to_json() for a in report.artifacts],
    )


class _ThreadPool:
    """Daemon threads that run native analyzers, each kept for the next
    job until it has idled ``idle_seconds``.

    Starting a thread per job cost about a tenth of the engine's CPU time
    on no-op jobs (#6). Unlike a fixed-size pool, a job never waits for a
    thread: with none idle, a new one starts, so analyzers stuck past their
    timeout hold only their own threads, never a later job's.
    """

    def __init__(self, idle_seconds: float) -> None:
        self._idle_seconds = idle_seconds
        self._work: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, work: Callable[[], None]) -> None:
        """Runs ``work`` (which must not raise) in a thread of the pool."""
        with self._lock:
            if self._idle:
                self._idle -= 1
                self._work.put(work)
                return
        threading.Thread(
            target=self._serve, args=(work,), name="native-analyzer", daemon=True
        ).start()

    def _serve(self, work: Callable[[], None]) -> None:
        while True:
            work()
            with self._lock:
                self._idle += 1
            try:
                work = self._work.get(timeout=self._idle_seconds)
            except queue.Empty:
                with self._lock:
                    # A submitter may have counted on this thread just now.
                    try:
                        work = self._work.get_nowait()
                    except queue.Empty:
                        self._idle -= 1
                        return


_NATIVE_THREADS = _ThreadPool(idle_seconds=60.0)


def run_external(
    job_id: str,
    entry: CatalogEntry,
    document: Mapping[str, Any],
    job_dir: Path,
    *,
    file: Path | None,
    timeout: float,
    output_limit: int,
) -> Outcome:
    """Runs an external analyzer in ``job_dir`` (created, left for the
    caller to remove) with input ``document``."""
    assert entry.command is not None and entry.root is not None
    stdin_document = _prepare_folder(job_dir, document, file)
    try:
        process = subprocess.Popen(  # noqa: S603 (the command comes from the admin's catalog)
            [str(entry.command), str(job_dir)],
            cwd=entry.root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env=_child_environment(job_dir, document),
        )
    except OSError as exc:
        return Outcome.failure(
            f"analyzer program {entry.command.name} cannot start: {exc}"
        )
    with _RUNNING_LOCK:
        _RUNNING[job_id] = process
    try:
        return _supervise(process, job_dir, stdin_document, timeout, output_limit)
    finally:
        with _RUNNING_LOCK:
            _RUNNING.pop(job_id, None)


def _prepare_folder(
    job_dir: Path, document: Mapping[str, Any], file: Path | None
) -> bytes:
    (job_dir / "input").mkdir(parents=True)
    (job_dir / "output").mkdir()
    folder_document = dict(document)
    stdin_document = dict(document)
    if file is not None:
        name = "attachment"
        shutil.copyfile(file, job_dir / "input" / name)
        folder_document["file"] = name  # Cortex 3: a bare name inside input/
        stdin_document["file"] = str(job_dir / "input" / name)  # Cortex 1/2
    cacerts = (document.get("config") or {}).get("cacerts")
    if cacerts:
        (job_dir / "input" / "cacerts").write_text(str(cacerts), encoding="utf-8")
    (job_dir / "input" / "input.json").write_text(
        json.dumps(folder_document), encoding="utf-8"
    )
    return json.dumps(stdin_document).encode("utf-8")


def _child_environment(job_dir: Path, document: Mapping[str, Any]) -> dict[str, str]:
    # Cerana's own settings (database URL, keys) stay out of analyzers' reach.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERANA_")}
    if (document.get("config") or {}).get("cacerts"):
        env["REQUESTS_CA_BUNDLE"] = str(job_dir / "input" / "cacerts")
    return env


class _Capture:
    """Reads one pipe to the end, keeping at most ``limit`` bytes."""

    def __init__(self, pipe: IO[bytes], limit: int, on_flood: Any) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.flooded = False
        self._limit = limit
        self._on_flood = on_flood
        self.thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.thread.start()

    def _read(self, pipe: IO[bytes]) -> None:
        with pipe:
            while chunk := pipe.read(65536):
                if self.size + len(chunk) > self._limit:
                    self.flooded = True
                    self._on_flood()
                    continue  # keep draining until the group is dead
                self.chunks.append(chunk)
                self.size += len(chunk)

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", errors="replace")


def _supervise(
    process: subprocess.Popen[bytes],
    job_dir: Path,
    stdin_document: bytes,
    timeout: float,
    output_limit: int,
) -> Outcome:
    def flood() -> None:
        _kill_group(process, signal.SIGKILL)

    assert process.stdout and process.stderr and process.stdin
    stdout = _Capture(process.stdout, output_limit, flood)
    stderr = _Capture(process.stderr, output_limit, flood)
    threading.Thread(
        target=_feed, args=(process.stdin, stdin_document), daemon=True
    ).start()
    timed_out = not _wait_exit(process, timeout)
    if timed_out:
        _kill_group(process, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=_KILL_GRACE_SECONDS)
    _kill_group(process, signal.SIGKILL)  # children left behind, if any
    process.wait()
    for capture in (stdout, stderr):
        capture.thread.join(timeout=5)
    if timed_out:
        return Outcome.failure(
            f"analyzer did not finish within {timeout:g} s; its processes were killed"
        )
    if stdout.flooded or stderr.flooded:
        return Outcome.failure(
            f"analyzer wrote more than {output_limit} bytes to stdout or stderr; "
            "its processes were killed"
        )
    return _read_outcome(job_dir, stdout.text(), stderr.text(), output_limit)


def _wait_exit(process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Waits for ``process`` to exit; returns False after ``timeout``.

    ``Popen.wait(timeout)`` polls with sleeps growing to 50 ms, which added
    about 20 ms to a 40 ms analyzer; a pidfd wakes us when it exits.
    """
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):  # not Linux 5.3+
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        # poll, not select: a busy server's descriptors go past FD_SETSIZE.
        waiter = select.poll()
        waiter.register(pidfd, select.POLLIN)
        exited = bool(waiter.poll(timeout * 1000))
    finally:
        os.close(pidfd)
    if exited:
        process.wait()
    return exited


def _feed(pipe: IO[bytes], document: bytes) -> None:
    try:
        with pipe:
            pipe.write(document)
    except OSError:  # a job-folder analyzer need not read its stdin
        pass


def _kill_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _read_outcome(job_dir: Path, stdout: str, stderr: str, limit: int) -> Outcome:
    output_file = job_dir / "output" / "output.json"
    if output_file.is_file() and output_file.stat().st_size > 0:
        if output_file.stat().st_size > limit:
            return Outcome.failure(f"analyzer report is larger than {limit} bytes")
        raw = output_file.read_text(encoding="utf-8", errors="replace")
    elif stdout.strip():
        raw = stdout  # Cortex 1/2 analyzers answer on stdout
    else:
        detail = (stderr or "no output at all").strip()
        return Outcome.failure(f"analyzer produced no report: {_tail(detail)}")
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as exc:
        detail = _tail(stderr.strip()) if stderr.strip() else raw[:200]
        return Outcome.failure(f"analyzer report is not valid JSON ({exc}): {detail}")
    return parse_report(document, job_dir / "output")


def parse_report(document: Any, output_dir: Path) -> Outcome:
    """Validates an analyzer's output document like Cortex 3 does."""
    if not isinstance(document, dict):
        return Outcome.failure("analyzer report must be a JSON object")
    if document.get("success") is not True:
        message = document.get("errorMessage")
        return Outcome.failure(
            str(message) if message else "analyzer reported a failure without a message"
        )
    full = document.get("full")
    summary = document.get("summary") or {}
    if not isinstance(full, dict):
        return Outcome.failure("invalid analyzer report: 'full' must be a JSON object")
    if not isinstance(summary, dict):
        return Outcome.failure(
            "invalid analyzer report: 'summary' must be a JSON object"
        )
    artifacts = document.get("artifacts") or []
    operations = document.get("operations") or []
    if not isinstance(artifacts, list) or not isinstance(operations, list):
        return Outcome.failure("invalid analyzer report: artifacts must be a list")
    outcome = Outcome(success=True, full=full, summary=summary, operations=operations)
    for artifact in artifacts:
        problem = _check_artifact(artifact, output_dir, outcome)
        if problem:
            return Outcome.failure(f"invalid artifact in analyzer report: {problem}")
    return outcome


def _check_artifact(artifact: Any, output_dir: Path, outcome: Outcome) -> str | None:
    if not isinstance(artifact, dict) or not isinstance(artifact.get("dataType"), str):
        return None if isinstance(artifact, dict) else "not an object"
    unknown = set(artifact) - _ARTIFACT_KEYS
    if unknown:
        return f"unknown key {sorted(unknown)[0]!r}"
    if artifact["dataType"] == "file":
        name = str(artifact.get("file") or "")
        path = (output_dir / name).resolve()
        if not name or path.parent != output_dir.resolve() or not path.is_file():
            return f"file {name!r} is not inside the output folder"
        outcome.files[name] = path
    elif not isinstance(artifact.get("data"), str):
        return "'data' must be a string"
    outcome.artifacts.append(artifact)
    return None


def _tail(text: str, size: int = 1000) -> str:
    return text if len(text) <= size else "..." + text[-size:]


def wait_seconds(started: float) -> float:
    return time.monotonic() - started
