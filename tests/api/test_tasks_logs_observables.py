"""Tasks, task logs with attachments, observables and their similarity."""

from __future__ import annotations

import hashlib
import io
import zipfile

import httpx

from tests.api.conftest import LiveServer


def _case(admin: httpx.Client, **fields: object) -> dict[str, object]:
    response = admin.post(
        "/api/case", json={"title": "Case", "description": "d", **fields}
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_first_log_starts_the_task_and_sets_the_owner(admin: httpx.Client) -> None:
    case = _case(admin)
    task = admin.post(f"/api/case/{case['id']}/task", json={"title": "Triage"}).json()

    log = admin.post(
        f"/api/case/task/{task['id']}/log", json={"message": "looked at **headers**"}
    )
    after = admin.get(f"/api/case/task/{task['id']}").json()

    assert log.status_code == 201
    assert after["status"] == "InProgress" and after["owner"] == "admin"
    assert "startDate" in after


def test_completed_task_cannot_go_back_to_waiting(admin: httpx.Client) -> None:
    case = _case(admin)
    task = admin.post(
        f"/api/case/{case['id']}/task", json={"title": "t", "status": "Completed"}
    ).json()

    response = admin.patch(f"/api/case/task/{task['id']}", json={"status": "Waiting"})

    assert response.status_code == 400
    assert "Completed to Waiting" in response.json()["message"]


def test_log_with_attachment_can_be_downloaded_plain_and_zipped(
    admin: httpx.Client,
) -> None:
    case = _case(admin)
    task = admin.post(f"/api/case/{case['id']}/task", json={"title": "t"}).json()
    content = b"MZ fake sample bytes"

    log = admin.post(
        f"/api/case/task/{task['id']}/log",
        data={"_json": '{"message": "sample attached"}'},
        files={"attachment": ("sample.exe", content, "application/x-msdownload")},
    ).json()
    sha256 = log["attachment"]["id"]
    plain = admin.get(f"/api/datastore/{sha256}", params={"name": "sample.exe"})
    zipped = admin.get(f"/api/datastorezip/{sha256}", params={"name": "sample.exe"})

    assert log["attachment"]["hashes"] == [
        hashlib.sha256(content).hexdigest(),
        hashlib.sha1(content).hexdigest(),
        hashlib.md5(content).hexdigest(),
    ]
    assert plain.content == content
    assert (
        zipfile.ZipFile(io.BytesIO(zipped.content)).read("sample.exe", pwd=b"malware")
        == content
    )


def test_observable_value_is_normalised_and_validated(admin: httpx.Client) -> None:
    case = _case(admin)

    good = admin.post(
        f"/api/case/{case['id']}/artifact",
        json={"dataType": "ip", "data": "2001:DB8:0:0::1", "message": "m"},
    )
    bad = admin.post(
        f"/api/case/{case['id']}/artifact",
        json={"dataType": "ip", "data": "1.2.3", "message": "m"},
    )

    assert good.status_code == 201 and good.json()["data"] == "2001:db8::1"
    assert bad.status_code == 400
    assert bad.json()["errors"][0][0]["name"] == "data"
    assert (
        "1.2.3" in bad.json()["message"]
        or bad.json()["errors"][0][0]["value"] == "1.2.3"
    )


def test_many_values_in_one_request_report_each_failure(admin: httpx.Client) -> None:
    case = _case(admin)

    response = admin.post(
        f"/api/case/{case['id']}/artifact",
        json={
            "dataType": "domain",
            "data": ["a.example", "B.example", "not a domain"],
            "message": "m",
        },
    )

    assert response.status_code == 207
    assert sorted(o["data"] for o in response.json()["success"]) == [
        "a.example",
        "b.example",
    ]
    assert response.json()["failure"][0]["object"]["data"] == "not a domain"


def test_duplicate_observable_in_a_case_is_a_conflict(admin: httpx.Client) -> None:
    case = _case(admin)
    body = {
        "dataType": "hash",
        "data": "d41d8cd98f00b204e9800998ecf8427e",
        "message": "m",
    }

    admin.post(f"/api/case/{case['id']}/artifact", json=body)
    again = admin.post(f"/api/case/{case['id']}/artifact", json=body)

    assert again.status_code == 400
    assert again.json()["type"] == "ConflictError"


def test_unknown_datatype_is_refused(admin: httpx.Client) -> None:
    case = _case(admin)

    response = admin.post(
        f"/api/case/{case['id']}/artifact",
        json={"dataType": "bogus", "data": "x", "message": "m"},
    )

    assert response.status_code == 400
    assert "bogus" in response.json()["message"]


def test_similar_finds_the_value_in_other_live_cases_only(admin: httpx.Client) -> None:
    first, second, deleted = _case(admin), _case(admin), _case(admin)
    ids = [
        admin.post(
            f"/api/case/{c['id']}/artifact",
            json={"dataType": "ip", "data": "198.51.100.7", "message": "m"},
        ).json()["id"]
        for c in (first, second, deleted)
    ]
    admin.delete(f"/api/case/{deleted['id']}")

    similar = admin.get(f"/api/case/artifact/{ids[0]}/similar")

    assert similar.status_code == 200
    assert [o["case"]["id"] for o in similar.json()] == [second["id"]]


def test_similar_pages_and_counts_every_match(admin: httpx.Client) -> None:
    cases = [_case(admin) for _ in range(12)]
    ids = [
        admin.post(
            f"/api/case/{c['id']}/artifact",
            json={"dataType": "domain", "data": "paged.example", "message": "m"},
        ).json()["id"]
        for c in cases
    ]
    path = f"/api/case/artifact/{ids[0]}/similar"

    pages = {
        wanted: admin.get(path, params={"range": wanted})
        for wanted in ("0-2", "2-4", "3-10", "4-6", "9-12", "11-15", "all")
    }

    default = admin.get(path)

    shown = {wanted: len(page.json()) for wanted, page in pages.items()}
    assert shown == {
        "0-2": 2,
        "2-4": 2,
        "3-10": 7,
        "4-6": 2,
        "9-12": 2,
        "11-15": 0,
        "all": 11,
    }
    assert {page.headers["X-Total"] for page in pages.values()} == {"11"}
    # TheHive's default page: the first 10 of the 11.
    assert len(default.json()) == 10 and default.headers["X-Total"] == "11"
    assert [o["id"] for o in default.json()] == [
        o["id"] for o in pages["all"].json()[:10]
    ]
    every = [o["id"] for o in pages["all"].json()]
    assert every[:4] == [o["id"] for o in pages["0-2"].json() + pages["2-4"].json()]


def test_file_observable_is_similar_to_a_hash_observable(admin: httpx.Client) -> None:
    first, second = _case(admin), _case(admin)
    content = b"malicious payload"
    file_obs = admin.post(
        f"/api/case/{first['id']}/artifact",
        data={"_json": '{"dataType": "file", "message": "dropper"}'},
        files={"attachment": ("drop.bin", content, "application/octet-stream")},
    )
    admin.post(
        f"/api/case/{second['id']}/artifact",
        json={
            "dataType": "hash",
            "data": hashlib.md5(content).hexdigest(),
            "message": "from intel",
        },
    )

    similar = admin.get(f"/api/case/artifact/{file_obs.json()['id']}/similar").json()

    assert file_obs.status_code == 201
    assert file_obs.json()["attachment"]["name"] == "drop.bin"
    assert [o["case"]["id"] for o in similar] == [second["id"]]


def test_a_hash_is_similar_to_its_value_and_to_the_files_carrying_it(
    admin: httpx.Client,
) -> None:
    subject, other_hash, carrier, unrelated = (_case(admin) for _ in range(4))
    content = b"second stage"
    md5 = hashlib.md5(content).hexdigest()
    hash_obs = admin.post(
        f"/api/case/{subject['id']}/artifact",
        json={"dataType": "hash", "data": md5, "message": "from the mail"},
    ).json()
    admin.post(
        f"/api/case/{other_hash['id']}/artifact",
        json={"dataType": "hash", "data": md5.upper(), "message": "same value"},
    )
    admin.post(
        f"/api/case/{carrier['id']}/artifact",
        data={"_json": '{"dataType": "file", "message": "the sample"}'},
        files={"attachment": ("stage2.bin", content, "application/octet-stream")},
    )
    admin.post(
        f"/api/case/{unrelated['id']}/artifact",
        data={"_json": '{"dataType": "file", "message": "another sample"}'},
        files={"attachment": ("other.bin", b"other", "application/octet-stream")},
    )

    response = admin.get(f"/api/case/artifact/{hash_obs['id']}/similar")
    first = admin.get(
        f"/api/case/artifact/{hash_obs['id']}/similar", params={"range": "0-1"}
    )

    found = {(o["case"]["id"], o["dataType"]) for o in response.json()}
    assert found == {(other_hash["id"], "hash"), (carrier["id"], "file")}
    assert response.headers["X-Total"] == "2"
    assert len(first.json()) == 1 and first.headers["X-Total"] == "2"


def test_a_file_is_similar_to_files_of_the_same_content(admin: httpx.Client) -> None:
    first, second = _case(admin), _case(admin)
    sent = [
        admin.post(
            f"/api/case/{case['id']}/artifact",
            data={"_json": '{"dataType": "file", "message": "m"}'},
            files={"attachment": (name, b"same bytes", "application/octet-stream")},
        ).json()
        for case, name in ((first, "a.exe"), (second, "renamed.exe"))
    ]

    similar = admin.get(f"/api/case/artifact/{sent[0]['id']}/similar")

    assert [o["id"] for o in similar.json()] == [sent[1]["id"]]
    assert similar.headers["X-Total"] == "1"


def test_ioc_and_sighted_flags_update_and_are_searchable(admin: httpx.Client) -> None:
    case = _case(admin)
    obs = admin.post(
        f"/api/case/{case['id']}/artifact",
        json={"dataType": "url", "data": "hxxp://evil[.]example/x", "message": "m"},
    ).json()

    admin.patch(f"/api/case/artifact/{obs['id']}", json={"ioc": True, "sighted": True})
    found = admin.post(
        "/api/case/artifact/_search",
        json={"query": {"_and": [{"ioc": True}, {"sighted": True}]}},
    ).json()

    assert obs["data"] == "http://evil.example/x"
    assert [o["id"] for o in found] == [obs["id"]]


def test_audit_records_each_change_in_the_flow(admin: httpx.Client) -> None:
    case = _case(admin)
    admin.patch(f"/api/case/{case['id']}", json={"severity": 3})

    flow = admin.get("/api/flow", params={"rootId": case["id"], "count": 10}).json()

    operations = [item["base"]["operation"] for item in flow]
    assert operations == ["Update", "Creation"]
    assert flow[0]["base"]["details"] == {"severity": 3}


def test_datatype_list_includes_autonomous_system_and_admin_can_extend_it(
    server: LiveServer, admin: httpx.Client
) -> None:
    analyst = server.client(server.add_user("analyst", ["read", "write"]))

    added = admin.post("/api/list/list_artifactDataType", json={"value": "btc-address"})
    refused = analyst.post(
        "/api/list/list_artifactDataType", json={"value": "other-thing"}
    )
    listed = admin.get("/api/list/list_artifactDataType").json()

    assert added.status_code == 200
    assert refused.status_code == 403
    assert {"autonomous-system", "btc-address"} <= set(listed.values())


def test_search_with_nstats_counts_other_live_cases_per_observable(
    admin: httpx.Client,
) -> None:
    mine, second, third, deleted = (_case(admin) for _ in range(4))
    content = b"dropper bytes"

    def add(case: dict[str, object], data_type: str, data: str) -> None:
        response = admin.post(
            f"/api/case/{case['id']}/artifact",
            json={"dataType": data_type, "data": data, "message": "m"},
        )
        assert response.status_code == 201, response.text

    for case in (mine, second, third, deleted):
        add(case, "domain", "everywhere.example")
    add(second, "ip", "192.0.2.44")
    add(mine, "ip", "192.0.2.44")
    add(mine, "mail", "nobody@example.org")
    add(mine, "hash", hashlib.sha256(content).hexdigest())
    admin.post(
        f"/api/case/{third['id']}/artifact",
        data={"_json": '{"dataType": "file", "message": "sample"}'},
        files={"attachment": ("drop.bin", content, "application/octet-stream")},
    )
    admin.delete(f"/api/case/{deleted['id']}")

    found = admin.post(
        f"/api/case/{mine['id']}/artifact/_search",
        json={"nstats": True, "range": "all"},
    ).json()

    seen = {o["dataType"]: o["stats"]["seen"] for o in found}
    assert seen == {"domain": 2, "ip": 1, "mail": 0, "hash": 1}
