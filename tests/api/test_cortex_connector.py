"""TheHive 3's Cortex connector: a real cortexutils analyzer end to end,
remote instances, health in /api/status, and auto-run rules."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx

from cerana.connectors.cortex import health
from tests.api.conftest import LiveServer
from tests.api.cortex_support import (  # noqa: F401 (fixtures)
    FakeCortex,
    analyzers_dir,
    closed_port_url,
    cortex,
    fake_remote,
    stop_cortex,
    wait_for,
)


def _observable(
    client: httpx.Client, data_type: str = "ip", data: str = "8.8.4.4"
) -> dict[str, Any]:
    case = client.post(
        "/api/case", json={"title": "Phishing", "description": "d"}
    ).json()
    created = client.post(
        f"/api/case/{case['id']}/artifact",
        json={"dataType": data_type, "data": data, "message": "seen in mail"},
    )
    assert created.status_code == 201, created.text
    return dict(created.json())


def _wait_platform_job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        job = client.get(f"/api/connector/cortex/job/{job_id}").json()
        return job if job["status"] in ("Success", "Failure") else None

    found: dict[str, Any] = wait_for(ended, 20, f"platform job {job_id}")
    return found


def test_a_cortexutils_analyzer_runs_end_to_end_through_the_connector(
    cortex: LiveServer,
) -> None:
    client = cortex.client()
    observable = _observable(client)

    started = client.post(
        "/api/connector/cortex/job",
        json={"analyzerId": "Echo_1_0", "artifactId": observable["id"]},
    )
    job = _wait_platform_job(client, started.json()["id"])
    refreshed = client.get(f"/api/case/artifact/{observable['id']}").json()
    imported = client.post(f"/api/connector/cortex/job/{job['id']}/_import")

    assert started.status_code == 200 and started.json()["cortexId"] == "local"
    assert job["status"] == "Success"
    assert job["report"]["full"]["echo"] == "8.8.4.4"
    assert refreshed["reports"]["Echo_1_0"]["taxonomies"] == [
        {
            "level": "malicious",
            "namespace": "Echo",
            "predicate": "Seen",
            "value": "8.8.4.4",
        }
    ]
    assert imported.status_code == 201, imported.text
    assert sorted(o["dataType"] for o in imported.json()) == ["domain", "file", "ip"]
    file_observable = next(o for o in imported.json() if o["dataType"] == "file")
    assert file_observable["attachment"]["name"] == "dropped.txt"


def test_analyzers_are_listed_across_instances_for_a_datatype(
    cortex: LiveServer,
) -> None:
    client = cortex.client()

    listed = client.get("/api/connector/cortex/analyzer/type/ip").json()

    by_name = {a["name"]: a["cortexIds"] for a in listed}
    assert by_name["Echo"] == ["local"]
    assert by_name["Remote_Lookup"] == ["remote-a"]  # remote-b is down


def test_several_analyzers_run_on_several_observables_at_once(
    cortex: LiveServer,
) -> None:
    client = cortex.client()
    first = _observable(client, "ip", "1.1.1.1")
    second = client.post(
        f"/api/case/{first['_parent']}/artifact",
        json={"dataType": "ip", "data": "2.2.2.2", "message": "m"},
    ).json()

    started = client.post(
        "/api/connector/cortex/job",
        json={
            "analyzerIds": ["Echo_1_0", "NoOp_1_0"],
            "artifactIds": [first["id"], second["id"]],
        },
    ).json()
    ended = [_wait_platform_job(client, j["id"]) for j in started]

    assert len(ended) == 4 and {j["status"] for j in ended} == {"Success"}
    reports = client.get(f"/api/case/artifact/{second['id']}").json()["reports"]
    assert set(reports) == {"Echo_1_0", "NoOp_1_0"}


def test_job_search_pages_and_counts_every_match(cortex: LiveServer) -> None:
    client = cortex.client()
    first = _observable(client, "ip", "5.5.5.5")
    second = client.post(
        f"/api/case/{first['_parent']}/artifact",
        json={"dataType": "ip", "data": "6.6.6.6", "message": "m"},
    ).json()
    client.post(
        "/api/connector/cortex/job",
        json={"analyzerIds": ["NoOp_1_0"], "artifactIds": [first["id"], second["id"]]},
    )

    page = client.post(
        "/api/connector/cortex/job/_search",
        json={"range": "0-1", "sort": ["-startDate"]},
    )
    one = client.post(
        "/api/connector/cortex/job/_search",
        json={"query": {"artifactId": second["id"]}},
    )

    assert page.status_code == 200 and len(page.json()) == 1
    assert page.headers["X-Total"] == "2"
    assert [j["artifactId"] for j in one.json()] == [second["id"]]
    assert one.headers["X-Total"] == "1"


def test_a_remote_instance_runs_jobs_polled_until_done(
    cortex: LiveServer, fake_remote: FakeCortex
) -> None:
    client = cortex.client()
    observable = _observable(client)

    started = client.post(
        "/api/connector/cortex/job",
        json={
            "analyzerId": "Remote_Lookup",
            "artifactId": observable["id"],
            "cortexId": "remote-a",
        },
    ).json()
    job = _wait_platform_job(client, started["id"])
    reports = client.get(f"/api/case/artifact/{observable['id']}").json()["reports"]

    assert job["status"] == "Success" and job["cortexId"] == "remote-a"
    assert fake_remote.runs[-1] == {
        "data": "8.8.4.4",
        "dataType": "ip",
        "tlp": 2,
        "message": observable["_parent"],
    }
    assert reports["Remote_Lookup_2_0"]["taxonomies"][0]["value"] == "remote-a"


def test_running_on_an_unreachable_instance_names_it(cortex: LiveServer) -> None:
    client = cortex.client()
    observable = _observable(client)

    response = client.post(
        "/api/connector/cortex/job",
        json={
            "analyzerId": "Remote_Lookup",
            "artifactId": observable["id"],
            "cortexId": "remote-b",
        },
    )

    assert response.status_code == 503
    assert response.json()["message"].startswith(
        "Cortex instance remote-b is unreachable"
    )


def test_status_shows_each_instance_and_warning_when_one_is_down(
    cortex: LiveServer,
) -> None:
    health.probe_instances(cortex.platform)

    status = cortex.client(key="").get("/api/status").json()["connectors"]["cortex"]

    assert status["status"] == "WARNING"
    assert status["servers"] == [
        {"name": "local", "version": status["servers"][0]["version"], "status": "OK"},
        {"name": "remote-a", "version": "3.1.8-1", "status": "OK"},
        {"name": "remote-b", "version": "", "status": "ERROR"},
    ]


def test_status_is_error_when_every_instance_is_down_and_ok_when_all_answer(
    cortex: LiveServer, fake_remote: FakeCortex
) -> None:
    platform = cortex.platform
    down = dataclasses.replace(
        platform.settings,
        cortex_embedded=False,
        cortex={"x": {"url": closed_port_url()}, "y": {"url": closed_port_url()}},
    )
    up = dataclasses.replace(
        platform.settings,
        cortex={"remote-a": {"url": fake_remote.url, "key": "key-remote-a"}},
    )

    with_down = dataclasses.replace(platform, settings=down)
    health.probe_instances(with_down)
    with platform.db.read() as conn:
        all_down = health.connector_status(conn, down)
    health.probe_instances(dataclasses.replace(platform, settings=up))
    with platform.db.read() as conn:
        all_up = health.connector_status(conn, up)

    assert all_down["status"] == "ERROR"
    assert all_up["status"] == "OK"


def test_auto_run_rules_analyse_every_new_observable_of_their_datatype(
    cortex: LiveServer,
) -> None:
    client = cortex.client()
    rule = client.post(
        "/api/connector/cortex/autorun",
        json={"dataType": "domain", "analyzers": ["NoOp_1_0"]},
    )

    observable = _observable(client, "domain", "auto.example")
    ip = client.post(
        f"/api/case/{observable['_parent']}/artifact",
        json={"dataType": "ip", "data": "3.3.3.3", "message": "m"},
    ).json()

    reports = wait_for(
        lambda: client.get(f"/api/case/artifact/{observable['id']}").json()["reports"],
        what="auto-run report",
    )
    assert rule.status_code == 201
    assert set(reports) == {"NoOp_1_0"}
    assert client.get(f"/api/case/artifact/{ip['id']}").json()["reports"] == {}


def test_auto_run_goes_on_past_an_observable_the_analyzer_refuses(
    cortex: LiveServer,
) -> None:
    from cerana.connectors.cortex.autorun import run_autorun

    client = cortex.client()
    client.patch(
        "/cortex/api/analyzerconfig/Echo",
        json={"config": {"check_tlp": True, "max_tlp": 1}},
    )
    red = _observable(client, "ip", "7.7.7.7")
    client.patch(f"/api/case/artifact/{red['id']}", json={"tlp": 3})
    green = client.post(
        f"/api/case/{red['_parent']}/artifact",
        json={"dataType": "ip", "data": "8.8.8.9", "message": "m", "tlp": 1},
    ).json()
    organisation = cortex.platform.settings.organisation

    run_autorun(
        cortex.platform, "admin", organisation, ["Echo_1_0"], [red["id"], green["id"]]
    )

    reports = wait_for(
        lambda: client.get(f"/api/case/artifact/{green['id']}").json()["reports"],
        what="the report of the observable the analyzer accepts",
    )
    assert set(reports) == {"Echo_1_0"}
    assert client.get(f"/api/case/artifact/{red['id']}").json()["reports"] == {}
