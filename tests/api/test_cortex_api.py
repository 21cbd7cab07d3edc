"""The embedded engine's Cortex REST API, with real analyzer processes."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cortex4py.api import Api
from sqlalchemy import select, update

from cerana.analysis import jobs
from cerana.store import tables
from tests.api.conftest import LiveServer
from tests.api.cortex_support import (  # noqa: F401 (fixtures)
    ECHO_KEY,
    analyzers_dir,
    cortex,
    stop_cortex,
    wait_for,
    wait_job,
)


def test_status_answers_without_authentication(cortex: LiveServer) -> None:
    response = cortex.client(key="").get("/cortex/api/status")

    assert response.status_code == 200
    assert response.json()["versions"]["Cortex"].startswith("3.")


def test_analyzers_are_listed_got_and_filtered_by_datatype(cortex: LiveServer) -> None:
    client = cortex.client()

    listed = client.get("/cortex/api/analyzer")
    by_type = client.get("/cortex/api/analyzer/type/ip").json()
    one = client.get("/cortex/api/analyzer/Echo_1_0").json()
    missing = client.get("/cortex/api/analyzer/Nope_1_0")

    assert {"Echo_1_0", "NoOp_1_0", "FireHOLBlocklists_2_0"} <= {
        a["id"] for a in listed.json()
    }
    assert listed.headers["X-Total"] == str(len(listed.json()))
    assert {a["name"] for a in by_type} == {"Echo", "NoOp", "FireHOLBlocklists"}
    assert one["configuration"]["key"] == "********"
    assert (missing.status_code, missing.json()["type"]) == (404, "NotFoundError")


@pytest.mark.parametrize(
    "style", ["cortex2-json", "thehive3-attributes", "multipart-json"]
)
def test_every_run_body_style_creates_a_job(cortex: LiveServer, style: str) -> None:
    client = cortex.client()
    url = "/cortex/api/analyzer/Echo_1_0/run"
    if style == "cortex2-json":
        response = client.post(
            url, json={"data": "8.8.8.8", "dataType": "ip", "tlp": 1}
        )
    elif style == "thehive3-attributes":
        response = client.post(
            url, json={"data": "8.8.8.8", "attributes": {"dataType": "ip", "tlp": 1}}
        )
    else:
        response = client.post(
            url,
            data={"_json": '{"data": "8.8.8.8", "dataType": "ip", "tlp": 1}'},
            files={"x": ("x", b"")},
        )

    job = wait_job(client, response.json()["id"])

    assert response.status_code == 200
    assert job["status"] == "Success", job.get("errorMessage")
    assert job["report"]["summary"]["taxonomies"][0]["value"] == "8.8.8.8"
    assert job["tlp"] == 1


def test_a_file_is_analysed_from_a_multipart_run(cortex: LiveServer) -> None:
    client = cortex.client()
    response = client.post(
        "/cortex/api/analyzer/NoOp_1_0/run",
        data={"_json": '{"dataType": "file", "tlp": 2}'},
        files={"data": ("sample.bin", b"MZ\x90\x00", "application/octet-stream")},
    )

    job = wait_job(client, response.json()["id"])

    assert job["status"] == "Success"
    assert job["attachment"]["name"] == "sample.bin"


def test_waitreport_returns_while_the_job_runs_and_inf_is_bounded(
    cortex: LiveServer,
) -> None:
    client = cortex.client()
    job = client.post(
        "/cortex/api/analyzer/Sleepy_1_0/run", json={"data": "1.5", "dataType": "other"}
    ).json()

    early = client.get(
        f"/cortex/api/job/{job['id']}/waitreport", params={"atMost": "100 milliseconds"}
    )
    final = client.get(
        f"/cortex/api/job/{job['id']}/waitreport", params={"atMost": "Inf"}
    )

    assert early.status_code == 200 and early.json()["report"] in ("Waiting", "Running")
    assert final.status_code == 200 and final.json()["status"] == "Success"


def test_a_second_identical_run_comes_from_the_cache(cortex: LiveServer) -> None:
    client = cortex.client()
    body = {"data": "cache.example", "dataType": "domain"}

    first = client.post("/cortex/api/analyzer/Echo_1_0/run", json=body).json()
    second = client.post("/cortex/api/analyzer/Echo_1_0/run", json=body).json()
    forced = client.post(
        "/cortex/api/analyzer/Echo_1_0/run", params={"force": "1"}, json=body
    ).json()

    assert second["id"] == first["id"] and second["fromCache"] is True
    assert forced["id"] != first["id"] and forced["fromCache"] is False


def test_a_tlp_above_the_maximum_is_refused_before_running(cortex: LiveServer) -> None:
    client = cortex.client()
    client.patch(
        "/cortex/api/analyzerconfig/Echo",
        json={"config": {"check_tlp": True, "max_tlp": 1}},
    )

    refused = client.post(
        "/cortex/api/analyzer/Echo_1_0/run",
        json={"data": "9.9.9.9", "dataType": "ip", "tlp": 3},
    )

    assert refused.status_code == 400
    assert refused.json() == {
        "type": "PolicyRefused",
        "message": "TLP:RED is higher than allowed: analyzer Echo accepts observables up to TLP:GREEN",
    }
    assert client.post("/cortex/api/job/_search", json={"query": {}}).json() == []


def test_jobs_over_the_rate_limit_wait_and_all_succeed(cortex: LiveServer) -> None:
    client = cortex.client()

    ids = [
        client.post(
            "/cortex/api/analyzer/EchoLimited_1_0/run",
            json={"data": f"v{i}", "dataType": "other"},
        ).json()["id"]
        for i in range(5)
    ]
    done = [wait_job(client, job_id, timeout=30) for job_id in ids]

    assert [j["status"] for j in done] == ["Success"] * 5
    starts = sorted(j["startDate"] for j in done)
    # 2 per second: any 3 consecutive starts span at least a second
    assert all(starts[i + 2] - starts[i] >= 990 for i in range(3))


def test_a_job_past_its_timeout_fails_and_its_processes_are_killed(
    cortex: LiveServer, tmp_path: Path
) -> None:
    client = cortex.client()
    pid_file = tmp_path / "pids"
    job = client.post(
        "/cortex/api/analyzer/Sleepy_1_0/run",
        json={
            "data": "60",
            "dataType": "other",
            "parameters": {"pid_file": str(pid_file)},
        },
    ).json()

    done = wait_job(client, job["id"], timeout=20)

    assert done["status"] == "Failure"
    assert (
        "did not finish within 2.4 s; its processes were killed" in done["errorMessage"]
    )
    for pid in map(int, pid_file.read_text().split()):
        assert (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        )


@pytest.mark.parametrize(
    ("analyzer", "message"),
    [
        ("Malformed_1_0", "not valid JSON"),
        ("Crash_1_0", "analyzer exploded on purpose"),
        ("Forever_1_0", "did not finish within"),
        ("Flood_1_0", "wrote more than"),
    ],
    ids=["malformed", "crash", "never-ends", "floods-stdout"],
)
def test_a_bad_analyzer_fails_its_job_and_others_still_run(
    cortex: LiveServer, analyzer: str, message: str
) -> None:
    client = cortex.client()

    bad = client.post(
        f"/cortex/api/analyzer/{analyzer}/run", json={"data": "x", "dataType": "other"}
    ).json()
    good = client.post(
        "/cortex/api/analyzer/NoOp_1_0/run", json={"data": "y", "dataType": "other"}
    ).json()

    assert wait_job(client, good["id"])["status"] == "Success"
    failed = wait_job(client, bad["id"], timeout=40)
    assert failed["status"] == "Failure" and message in failed["errorMessage"]
    assert failed["report"]["success"] is False


def test_secrets_stay_out_of_outputs_stored_inputs_and_logs(
    cortex: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = cortex.client()

    with caplog.at_level(logging.DEBUG):
        job = client.post(
            "/cortex/api/analyzer/Echo_1_0/run",
            json={"data": "leak", "dataType": "other"},
        ).json()
        done = wait_job(client, job["id"])
    config = client.get("/cortex/api/analyzerconfig/Echo").json()
    with cortex.platform.db.read() as conn:
        stored = conn.execute(
            select(tables.analysis_job.c.input).where(
                tables.analysis_job.c.id == job["id"]
            )
        ).scalar_one()

    assert done["status"] == "Failure"
    assert "cannot log in with key REMOVED" in done["errorMessage"]
    assert stored["config"]["key"] == "REMOVED"
    assert config["config"]["key"] == "********"
    assert ECHO_KEY not in caplog.text
    assert ECHO_KEY not in str(done)


def test_admin_configuration_is_checked_and_secrets_are_encrypted(
    cortex: LiveServer,
) -> None:
    client = cortex.client()

    rejected = client.patch(
        "/cortex/api/analyzerconfig/Echo", json={"config": {"colour": "red", "key": 3}}
    )
    saved = client.patch(
        "/cortex/api/analyzerconfig/Echo",
        json={"config": {"key": "new-secret-value-42"}},
    )
    with cortex.platform.db.read() as conn:
        row = conn.execute(select(tables.analyzer_config.c.configuration)).scalar_one()

    assert rejected.status_code == 400
    assert "unknown configuration item 'colour'" in rejected.json()["message"]
    assert "'key' must be a string" in rejected.json()["message"]
    assert saved.json()["config"]["key"] == "********"
    assert "new-secret-value-42" not in str(row)


def test_cancel_stops_a_running_job(cortex: LiveServer) -> None:
    client = cortex.client()
    job = client.post(
        "/cortex/api/analyzer/Sleepy_1_0/run", json={"data": "30", "dataType": "other"}
    ).json()
    wait_for(
        lambda: (
            client.get(f"/cortex/api/job/{job['id']}").json()["status"] == "InProgress"
        ),
        what="start",
    )

    cancelled = client.post(f"/cortex/api/job/{job['id']}/cancel").json()

    assert cancelled["status"] == "Failure"
    assert cancelled["errorMessage"] == "cancelled by admin"


def test_cortex4py_2_1_0_runs_and_reads_jobs(cortex: LiveServer) -> None:
    api = Api(cortex.url + "/cortex", cortex.admin_key)

    analyzers = api.analyzers.get_by_type("ip")
    echo = api.analyzers.get_by_name("Echo")
    job = api.analyzers.run_by_id(
        echo.id, {"data": "4.4.4.4", "dataType": "ip", "tlp": 2, "message": "m"}
    )
    report = api.jobs.get_report_async(job.id)
    found = api.jobs.find_all({"status": "Success"}, range="all")
    artifacts = api.jobs.get_artifacts(job.id)

    assert "Echo" in {a.name for a in analyzers}
    assert report.status == "Success" and report.report["full"]["echo"] == "4.4.4.4"
    assert [j.id for j in found] == [job.id]
    assert [a.dataType for a in artifacts] == ["ip", "domain", "file"]


def test_jobs_interrupted_by_a_killed_worker_are_run_again(cortex: LiveServer) -> None:
    client = cortex.client()
    settings = cortex.platform.settings
    job = _waiting_job(cortex, "1.5")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _WORKER_SCRIPT,
            settings.database_url,
            str(settings.data_dir),
            settings.analyzer_paths,
            job,
        ],
        start_new_session=True,
    )
    wait_for(
        lambda: client.get(f"/cortex/api/job/{job}").json()["status"] == "InProgress",
        what="start",
    )

    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    recovered = jobs.recover_jobs(cortex.platform)

    assert recovered == 1
    done = wait_job(client, job, timeout=20)
    assert done["status"] == "Success"


def test_a_job_interrupted_too_often_fails_with_the_reason(cortex: LiveServer) -> None:
    client = cortex.client()
    job = _waiting_job(cortex, "1")
    with cortex.platform.db.write() as conn:
        conn.execute(
            update(tables.analysis_job)
            .where(tables.analysis_job.c.id == job)
            .values(status="InProgress", attempts=2, worker="nohost:1", start_date=1)
        )

    jobs.recover_jobs(cortex.platform)

    done = client.get(f"/cortex/api/job/{job}").json()
    assert done["status"] == "Failure"
    assert "stopped (crash or restart) 2 times; not retried" in done["errorMessage"]


def _waiting_job(cortex: LiveServer, seconds: str) -> str:
    """Inserts a Sleepy job no worker was told about."""
    from cerana.analysis.engine import engine_for
    from cerana.services.context import system_actor

    engine = engine_for(cortex.platform)
    with cortex.platform.db.write() as conn:
        row, _ = jobs.submit_job(
            conn,
            engine,
            system_actor("cerana"),
            "Sleepy_1_0",
            jobs.JobRequest("other", seconds, force=True),
        )
    return str(row["id"])


_WORKER_SCRIPT = """
import dataclasses, sys
from pathlib import Path
from cerana.analysis import jobs
from cerana.config import Settings
from cerana.platform import Platform
url, data_dir, paths, job = sys.argv[1:]
settings = Settings(data_dir=Path(data_dir) / "worker", database_url=url,
                    secret_key="x", analyzer_paths=paths,
                    analyzers={"global": {"job_timeout": 0.5}})
jobs.execute_job(Platform.open(settings), job)
"""


def test_job_search_filters_and_pages(cortex: LiveServer) -> None:
    client = cortex.client()
    for value in ("a", "b", "c"):
        wait_job(
            client,
            client.post(
                "/cortex/api/analyzer/NoOp_1_0/run",
                json={"data": value, "dataType": "other"},
            ).json()["id"],
        )

    page = client.post(
        "/cortex/api/job/_search",
        params={"range": "0-2"},
        json={"query": {"_field": "analyzerId", "_value": "NoOp_1_0"}},
    )
    listed = client.get("/cortex/api/job", params={"dataFilter": "b"})
    bad = client.post(
        "/cortex/api/job/_search", json={"query": {"_field": "colour", "_value": 1}}
    )

    assert len(page.json()) == 2 and page.headers["X-Total"] == "3"
    assert [j["data"] for j in listed.json()] == ["b"]
    assert bad.status_code == 400


def test_without_the_embedded_engine_no_cortex_api_is_served(tmp_path: Path) -> None:
    from cerana.app import create_app
    from tests.api.conftest import settings_for

    def cortex_paths(embedded: bool) -> list[str]:
        settings = dataclasses.replace(
            settings_for(f"sqlite:///{tmp_path / 'c.db'}", tmp_path),
            cortex_embedded=embedded,
        )
        paths = create_app(settings).openapi()["paths"]
        return [path for path in paths if path.startswith("/cortex/api")]

    assert cortex_paths(False) == []
    assert "/cortex/api/analyzer/{analyzer_id}/run" in cortex_paths(True)
