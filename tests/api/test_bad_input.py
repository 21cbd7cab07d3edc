"""Bad input on every API route: a 4xx JSON error, never a 500, never a
partial write.

The routes are read from the application itself, so a new route is probed
as soon as it exists; `test_every_route_is_classified` makes its author say
what kind of body it takes. Writes are checked in the database, audit rows
by the request id the server answers with.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import func, select

from cerana.app import create_app
from cerana.config import Settings
from cerana.store import tables
from tests.api.conftest import LiveServer

Route = tuple[str, str]  # (method, path template)


def _api_routes() -> list[Route]:
    schema = create_app(Settings()).openapi()
    return sorted(
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
        if path.startswith("/api/")
    )


ROUTES = _api_routes()


def _params(path: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(path) if name]


def _nested(levels: int) -> Any:
    value: Any = "x"
    for _ in range(levels):
        value = [value]
    return value


def _nested_query(levels: int) -> dict[str, Any]:
    query: dict[str, Any] = {"status": "Open"}
    for _ in range(levels):
        query = {"_not": query}
    return query


# -- what each route takes ---------------------------------------------------


@dataclass(frozen=True)
class EntityBody:
    """A create or update body: the fields a valid request needs, a text
    field and (when the entity has one) a list field to spoil."""

    base: dict[str, Any]
    text: str
    listed: str | None = None


ENTITY_ROUTES: dict[Route, EntityBody] = {
    ("POST", "/api/case"): EntityBody(
        {"title": "t", "description": "d"}, "title", "tags"
    ),
    ("PATCH", "/api/case/{case_id}"): EntityBody({}, "title", "tags"),
    ("PATCH", "/api/case/_bulk"): EntityBody({"ids": ["{case_id}"]}, "title", "tags"),
    ("POST", "/api/case/{case_id}/task"): EntityBody({"title": "t"}, "title"),
    ("PATCH", "/api/case/task/{task_id}"): EntityBody({}, "description"),
    ("POST", "/api/case/task/{task_id}/log"): EntityBody({"message": "m"}, "message"),
    ("PATCH", "/api/case/task/log/{log_id}"): EntityBody({}, "message"),
    ("POST", "/api/case/{case_id}/artifact"): EntityBody(
        {"dataType": "ip", "data": "192.0.2.9", "message": "m"}, "message", "tags"
    ),
    ("PATCH", "/api/case/artifact/{observable_id}"): EntityBody({}, "message", "tags"),
    ("PATCH", "/api/case/artifact/_bulk"): EntityBody(
        {"ids": ["{observable_id}"]}, "message", "tags"
    ),
    ("POST", "/api/user"): EntityBody(
        {"login": "newcomer", "name": "N"}, "name", "roles"
    ),
    ("PATCH", "/api/user/{login}"): EntityBody({}, "name", "roles"),
    ("POST", "/api/alert"): EntityBody(
        {
            "type": "external",
            "source": "probe",
            "sourceRef": "ref-2",
            "title": "t",
            "description": "d",
        },
        "title",
        "tags",
    ),
    ("PATCH", "/api/alert/{alert_id}"): EntityBody({}, "description", "tags"),
    ("PATCH", "/api/alert/_bulk"): EntityBody(
        {"ids": ["{alert_id}"]}, "description", "tags"
    ),
    ("POST", "/api/case/template"): EntityBody(
        {"name": "Probe template"}, "description", "tags"
    ),
    ("PATCH", "/api/case/template/{template_id}"): EntityBody(
        {}, "description", "tags"
    ),
    ("POST", "/api/webhook"): EntityBody(
        {"name": "hook", "url": "https://hooks.example/in"}, "name", "objectTypes"
    ),
    ("PATCH", "/api/webhook/{webhook_id}"): EntityBody({}, "name", "objectTypes"),
}

# Bodies that are wrong for the routes neither entity, search nor stats.
OTHER_ROUTES: dict[Route, dict[str, dict[str, Any]]] = {
    ("POST", "/api/login"): {
        "number as login": {"user": 5, "password": "password-123"},
        "NUL in login": {"user": "ad\x00min", "password": "password-123"},
    },
    ("POST", "/api/user/{login}/password/set"): {
        "number as password": {"password": 5},
        "short password": {"password": "short"},
    },
    ("POST", "/api/user/{login}/password/change"): {
        "number as password": {"currentPassword": "password-123", "password": 5},
    },
    ("POST", "/api/list/{list_name}"): {
        "value nested 200 levels": {"value": _nested(200)},
        "100 kB value": {"value": "x" * 100_000},
    },
    ("POST", "/api/list/{list_name}/_exists"): {
        "object as key": {"key": {}, "value": "x"},
    },
    ("PATCH", "/api/list/{item_id}"): {
        "no value": {},
        "value nested 200 levels": {"value": _nested(200)},
    },
    ("POST", "/api/alert/_bulk"): {"object instead of a list": {"title": "t"}},
    ("POST", "/api/alert/merge/_bulk"): {
        "number as alertIds": {"alertIds": 5},
        "number as caseId": {"alertIds": ["{alert_id}"], "caseId": 5},
    },
    ("POST", "/api/alert/{alert_id}/createCase"): {
        "number as caseTemplate": {"caseTemplate": 5},
    },
    ("POST", "/api/case/template/_import"): {
        "template without a name": {"titlePrefix": "x"},
    },
    ("POST", "/api/connector/cortex/job"): {
        "number as analyzerId": {"analyzerId": 5, "artifactId": "{observable_id}"},
        "no artifactId": {"analyzerId": "Abuse_Finder_3_0"},
    },
    ("POST", "/api/connector/cortex/autorun"): {
        "number as dataType": {"dataType": 5, "analyzers": ["Abuse_Finder_3_0"]},
        "object as analyzers": {"dataType": "ip", "analyzers": {}},
    },
    ("POST", "/api/webhook/delivery/_retry"): {
        "number as ids": {"ids": 5},
        "word as an id": {"ids": ["first"]},
    },
}

# Routes whose body is a JSON array (a feed of alerts).
ARRAY_BODY_ROUTES: set[Route] = {("POST", "/api/alert/_bulk")}

# Routes that read no body: whatever is sent is ignored, as in TheHive.
BODYLESS_ROUTES: set[Route] = {
    ("POST", "/api/alert/{alert_id}/follow"),
    ("POST", "/api/alert/{alert_id}/ignore"),
    ("POST", "/api/alert/{alert_id}/markAsRead"),
    ("POST", "/api/alert/{alert_id}/markAsUnread"),
    ("POST", "/api/alert/{alert_id}/merge/{case_id}"),
    ("POST", "/api/alert/{alert_id}/unfollow"),
    ("POST", "/api/case/{case_id}/_merge/{other_id}"),
    ("POST", "/api/connector/cortex/job/{job_id}/_import"),
    ("POST", "/api/stream"),
    ("POST", "/api/user/{login}/key/renew"),
    ("POST", "/api/webhook/delivery/{delivery_id}/retry"),
}


def _is_search(route: Route) -> bool:
    return route[1].endswith("/_search")


def _is_stats(route: Route) -> bool:
    return route[1].endswith("/_stats")


BODY_ROUTES = [
    r for r in ROUTES if r[0] in ("POST", "PATCH") and r not in BODYLESS_ROUTES
]
ID_ROUTES = [r for r in ROUTES if _params(r[1])]


CASE_CHILDREN = ("task", "artifact", "template")


def _resource(route: Route) -> str:
    """The part of the API a route belongs to: ``case``, ``case/task``..."""
    parts = route[1].split("/")[2:]
    if parts[0] == "case" and len(parts) > 1 and parts[1] in CASE_CHILDREN:
        return f"case/{parts[1]}"
    return parts[0]


RESOURCES = sorted({_resource(r) for r in BODY_ROUTES})

# -- bad bodies --------------------------------------------------------------

JSON_TYPE = {"content-type": "application/json"}
DEEP_BODY = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
HUGE_BODY = b'{"title": "' + b"x" * (20 * 1024 * 1024) + b'"}'


@dataclass(frozen=True)
class BadBody:
    """One bad request body; the error must name ``field`` when it is set.

    ``json_body`` may hold ``"{case_id}"``-like placeholders for real ids.
    """

    label: str
    content: bytes | None = None
    json_body: Any = None
    multipart: dict[str, str] | None = None
    field: str | None = None

    def send(
        self, client: httpx.Client, method: str, url: str, ids: RealIds
    ) -> httpx.Response:
        if self.multipart is not None:
            files = {"attachment": ("x.txt", b"x")}
            return _request(client, method, url, data=self.multipart, files=files)
        content = self.content
        if content is None:
            content = json.dumps(ids.fill(self.json_body)).encode()
        return _request(client, method, url, content=content, headers=JSON_TYPE)


def _request(
    client: httpx.Client, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    try:
        return client.request(method, url, **kwargs)
    except httpx.TransportError:
        # After a 500 the server drops the connection; the next request on
        # it fails before reaching the server, so it is sent once more.
        return client.request(method, url, **kwargs)


GENERIC_BODIES = [
    BadBody("malformed JSON", b'{"title": '),
    BadBody("JSON array", b'[{"title": "t"}]'),
    BadBody("JSON string", b'"title"'),
    BadBody("JSON nested 10,000 levels", DEEP_BODY),
    BadBody("20 MB body", HUGE_BODY),
    BadBody("malformed _json part", multipart={"_json": '{"title": '}),
]


SEARCH_BODIES = [
    BadBody("number as query", json_body={"query": 5}),
    BadBody("string as query", json_body={"query": "status:Open"}),
    BadBody("object as range", json_body={"range": {}}),
    BadBody("number as sort", json_body={"sort": 7}),
    BadBody("object in sort", json_body={"sort": [{}]}),
    BadBody("number as _and", json_body={"query": {"_and": 5}}),
    BadBody("unknown operator", json_body={"query": {"_nosuch": {}}}),
    BadBody("2 MB _string", json_body={"query": {"_string": "x" * 2_000_000}}),
    BadBody("query nested 200 levels", json_body={"query": _nested_query(200)}),
]

STATS_BODIES = [
    BadBody("no stats", json_body={"query": {}}),
    BadBody("number as stats", json_body={"stats": 5}),
    BadBody("number as aggregation", json_body={"stats": [5]}),
    BadBody("unknown aggregation", json_body={"stats": [{"_agg": "nosuch"}]}),
    BadBody("number as query", json_body={"stats": [{"_agg": "count"}], "query": 5}),
]

BULK_BODIES = [
    BadBody("number as ids", json_body={"ids": 5}),
    BadBody("no ids", json_body={"ids": []}),
    BadBody("NUL in an id", json_body={"ids": ["a\x00b"]}),
]


def _entity_bodies(entity: EntityBody) -> list[BadBody]:
    base, text = entity.base, entity.text
    bodies = [
        BadBody("number as text", json_body={**base, text: 5}, field=text),
        BadBody(
            "unknown field", json_body={**base, "bogusField": 1}, field="bogusField"
        ),
        BadBody("2 MB text", json_body={**base, text: "x" * 2_000_000}, field=text),
        BadBody("NUL in text", json_body={**base, text: "a\x00b"}, field=text),
        BadBody(
            "text nested 200 levels", json_body={**base, text: _nested(200)}, field=text
        ),
    ]
    if entity.listed is not None:
        spoilt = {**base, entity.listed: {"a": 1}}
        bodies.append(BadBody("object as list", json_body=spoilt, field=entity.listed))
    return bodies


def bad_bodies(route: Route) -> list[BadBody]:
    """Every bad body ``route`` must refuse."""
    bodies = [
        b
        for b in GENERIC_BODIES
        if route not in ARRAY_BODY_ROUTES or b.label != "JSON array"
    ]
    if route in ENTITY_ROUTES:
        bodies += _entity_bodies(ENTITY_ROUTES[route])
    if route[0] == "PATCH" and route[1].endswith("/_bulk"):
        bodies += BULK_BODIES
    if _is_search(route):
        bodies += SEARCH_BODIES
    if _is_stats(route):
        bodies += STATS_BODIES
    for label, body in OTHER_ROUTES.get(route, {}).items():
        bodies.append(BadBody(label, json_body=body))
    return bodies


# -- real ids to put in paths ------------------------------------------------


class RealIds:
    """Creates, on first use, the records whose ids a route needs."""

    def __init__(self, server: LiveServer, admin: httpx.Client) -> None:
        self.server = server
        self.admin = admin
        self.known: dict[str, str] = {"list_name": "custom_fields"}
        self.makers: dict[str, Callable[[], str]] = {
            "case_id": self._case,
            "task_id": self._task,
            "log_id": self._log,
            "observable_id": self._observable,
            "login": self._user,
            "item_id": self._list_item,
            "alert_id": self._alert,
            "template_id": self._template,
            "webhook_id": self._webhook,
        }

    def __getitem__(self, name: str) -> str:
        if name not in self.known:
            self.known[name] = self.makers[name]()
        return self.known[name]

    def url(self, path: str) -> str:
        return path.format(**{n: quote(self[n], safe="") for n in _params(path)})

    def fill(self, body: Any) -> Any:
        if isinstance(body, dict):
            return {key: self.fill(value) for key, value in body.items()}
        if isinstance(body, list):
            return [self.fill(item) for item in body]
        if isinstance(body, str) and body.startswith("{") and body.endswith("}"):
            return self[body[1:-1]]
        return body

    def _created(self, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.admin.post(path, **kwargs)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def _user(self) -> str:
        self.server.add_user("analyst", ["read"])
        return "analyst"

    def _case(self) -> str:
        body = {"title": "Target", "description": "d"}
        return str(self._created("/api/case", json=body)["id"])

    def _task(self) -> str:
        path = f"/api/case/{self['case_id']}/task"
        return str(self._created(path, json={"title": "Triage"})["id"])

    def _log(self) -> str:
        path = f"/api/case/task/{self['task_id']}/log"
        return str(self._created(path, json={"message": "Headers checked"})["id"])

    def _observable(self) -> str:
        body = {"dataType": "ip", "data": "192.0.2.1", "message": "m"}
        path = f"/api/case/{self['case_id']}/artifact"
        return str(self._created(path, json=body)["id"])

    def _alert(self) -> str:
        body = {
            "type": "external",
            "source": "probe",
            "sourceRef": "ref-1",
            "title": "Suspicious login",
            "description": "d",
        }
        return str(self._created("/api/alert", json=body)["id"])

    def _template(self) -> str:
        body = {"name": "Phishing", "tasks": [{"title": "Triage"}]}
        return str(self._created("/api/case/template", json=body)["id"])

    def _webhook(self) -> str:
        body = {"name": "siem", "url": "https://hooks.example/cerana"}
        return str(self._created("/api/webhook", json=body)["id"])

    def _list_item(self) -> str:
        value = {"reference": "businessUnit", "name": "Business unit", "type": "string"}
        response = self.admin.post("/api/list/custom_fields", json={"value": value})
        assert response.status_code == 200, response.text
        return str(response.json())


@pytest.fixture
def ids(server: LiveServer, admin: httpx.Client) -> RealIds:
    return RealIds(server, admin)


# -- what a good refusal looks like ------------------------------------------


def _names(error: dict[str, Any], name: str) -> bool:
    problems = [p for group in error.get("errors", []) for p in group]
    return name in error["message"] or any(p.get("name") == name for p in problems)


def refusal_problem(response: httpx.Response, name: str | None = None) -> str | None:
    """Says what is wrong with ``response`` as the answer to bad input, or
    None when it is a 4xx carrying JSON errors (naming ``name`` if given).

    Multi-result routes answer a 400 with a list of error objects.
    """
    if not 400 <= response.status_code < 500:
        return f"status {response.status_code}"
    try:
        body = response.json()
    except ValueError:
        return "body is not JSON"
    return error_problem(body if isinstance(body, list) else [body], name)


def error_problem(errors: list[Any], name: str | None = None) -> str | None:
    """Says what is wrong with a list of error objects, or None."""
    if not errors or not all(
        isinstance(e, dict) and e.get("message") and e.get("type") for e in errors
    ):
        return "no message and type"
    if name is not None and not all(_names(e, name) for e in errors):
        return f"{name} is not named"
    return None


def _report(failures: Iterable[tuple[str, httpx.Response, str]]) -> str:
    return "\n".join(
        f"{label}: {why} ({r.status_code} {r.text[:160]})" for label, r, why in failures
    )


# -- the route table ---------------------------------------------------------


def test_every_route_is_classified() -> None:
    unclassified = [
        r
        for r in BODY_ROUTES
        if not (
            r in ENTITY_ROUTES or r in OTHER_ROUTES or _is_search(r) or _is_stats(r)
        )
    ]
    stale = (set(ENTITY_ROUTES) | set(OTHER_ROUTES) | BODYLESS_ROUTES) - set(ROUTES)

    assert unclassified == []
    assert stale == set()


def test_every_path_parameter_of_a_body_route_has_a_real_value(
    ids: RealIds,
) -> None:
    names = {name for _, path in BODY_ROUTES for name in _params(path)}

    missing = names - set(ids.makers) - set(ids.known)

    assert missing == set()


# -- bad bodies --------------------------------------------------------------


@pytest.mark.parametrize("resource", RESOURCES)
def test_bad_body_is_refused_with_a_json_error(
    resource: str, ids: RealIds, admin: httpx.Client
) -> None:
    routes = [r for r in BODY_ROUTES if _resource(r) == resource]

    answers = [
        (" ".join(route), body, body.send(admin, route[0], ids.url(route[1]), ids))
        for route in routes
        for body in bad_bodies(route)
    ]

    failures = [
        (f"{route}, {body.label}", response, why)
        for route, body, response in answers
        if (why := refusal_problem(response, body.field)) is not None
    ]
    assert failures == [], _report(failures)


# -- odd ids in paths --------------------------------------------------------

ODD_IDS = {
    "unknown id": "nosuchid0000000000xx",
    "20-digit number": "9" * 20,
    "encoded ../..": "..%2F..%2Fstatus",
    "encoded ..": "%2E%2E",
    "4000 characters": "x" * 4000,
    "unicode": quote("é🙂ñ"),
    "NUL byte": "a%00b",
}

# A list is named, not identified: any well-formed name is a list, empty if
# nobody added to it.
NAME_PARAMS = {"list_name"}

# Reads that answer an unknown parent or list with an empty result, as
# TheHive's searches do.
EMPTY_ANSWER_ROUTES: set[Route] = {
    ("GET", "/api/case/task/{task_id}/log"),
    ("POST", "/api/case/task/{task_id}/log/_search"),
    ("POST", "/api/case/{case_id}/artifact/_search"),
    ("GET", "/api/list/{list_name}"),
    ("POST", "/api/list/{list_name}/_exists"),
    ("GET", "/api/connector/cortex/analyzer/type/{data_type}"),
}

# Bodies that would succeed with real ids, so that only the id is wrong.
GOOD_BODIES: dict[Route, dict[str, Any]] = {
    **{route: entity.base for route, entity in ENTITY_ROUTES.items()},
    ("POST", "/api/list/{list_name}"): {"value": "x"},
    ("POST", "/api/list/{list_name}/_exists"): {"key": "reference", "value": "x"},
    ("PATCH", "/api/list/{item_id}"): {"value": "x"},
    ("POST", "/api/user/{login}/password/set"): {"password": "long-enough-9"},
    ("POST", "/api/user/{login}/password/change"): {
        "currentPassword": "password-123",
        "password": "long-enough-9",
    },
}


def _is_empty_answer(route: Route, response: httpx.Response) -> bool:
    empty: list[Any] = [[], {}, {"found": False}]
    return (
        route in EMPTY_ANSWER_ROUTES
        and response.status_code == 200
        and response.json() in empty
    )


def _odd_routes(kind: str) -> list[Route]:
    if kind not in ("unknown id", "20-digit number"):  # both are fine list names
        return ID_ROUTES
    return [r for r in ID_ROUTES if not set(_params(r[1])) <= NAME_PARAMS]


def _send_with_odd_id(client: httpx.Client, route: Route, odd: str) -> httpx.Response:
    method, path = route
    url = path.format(**dict.fromkeys(_params(path), odd))
    if method in ("POST", "PATCH"):
        return _request(client, method, url, json=GOOD_BODIES.get(route, {}))
    return _request(client, method, url)


@pytest.mark.parametrize("kind", list(ODD_IDS))
def test_odd_id_in_the_path_is_refused_with_a_json_error(
    kind: str, admin: httpx.Client
) -> None:
    routes = _odd_routes(kind)

    answers = [(r, _send_with_odd_id(admin, r, ODD_IDS[kind])) for r in routes]

    failures = [
        (" ".join(route), response, why)
        for route, response in answers
        if (why := refusal_problem(response)) is not None
        and not _is_empty_answer(route, response)
    ]
    assert failures == [], _report(failures)


# -- no partial write --------------------------------------------------------


def _audits(server: LiveServer, response: httpx.Response) -> list[tuple[str, str]]:
    """(object id, operation) of the audit rows the request wrote."""
    audit = tables.audit
    with server.platform.db.read() as conn:
        rows = conn.execute(
            select(audit.c.object_id, audit.c.operation).where(
                audit.c.request_id == response.headers["X-Request-Id"]
            )
        )
        return sorted((row.object_id, row.operation) for row in rows)


def _count(server: LiveServer, table: Any) -> int:
    with server.platform.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_case_with_a_bad_third_task_leaves_no_case_task_or_audit(
    server: LiveServer, admin: httpx.Client
) -> None:
    tasks = [{"title": "Triage"}, {"title": "Contain"}, {"title": ["Eradicate"]}]

    response = admin.post(
        "/api/case", json={"title": "t", "description": "d", "tasks": tasks}
    )
    left = (_count(server, tables.case), _count(server, tables.task))
    audits = _audits(server, response)
    next_case = admin.post("/api/case", json={"title": "next", "description": "d"})

    assert refusal_problem(response, "title") is None
    assert response.json()["tableName"] == "case_task"
    assert left == (0, 0) and audits == []
    assert next_case.json()["caseId"] == 1  # the failed case took no number


def test_multi_value_observable_keeps_and_audits_only_the_good_values(
    server: LiveServer, ids: RealIds, admin: httpx.Client
) -> None:
    values = ["good-one.example", "nodot", "good-two.example"]
    body = {"dataType": "domain", "data": values, "message": "senders"}

    response = admin.post(f"/api/case/{ids['case_id']}/artifact", json=body)
    created = response.json()["success"]
    audits = _audits(server, response)
    stored = _count(server, tables.observable)

    assert response.status_code == 207
    assert sorted(o["data"] for o in created) == [
        "good-one.example",
        "good-two.example",
    ]
    assert [f["object"]["data"] for f in response.json()["failure"]] == ["nodot"]
    assert error_problem(response.json()["failure"], "data") is None
    assert stored == 2
    assert audits == sorted((o["id"], "Creation") for o in created)


PATCHES = [
    pytest.param("/api/case/{case_id}", "title", "severity", 9, id="case"),
    pytest.param("/api/case/task/{task_id}", "title", "status", "Bogus", id="task"),
    pytest.param(
        "/api/case/task/log/{log_id}", "message", "startDate", "soon", id="task log"
    ),
    pytest.param(
        "/api/case/artifact/{observable_id}", "message", "tlp", 7, id="observable"
    ),
    pytest.param("/api/user/{login}", "name", "roles", ["root"], id="user"),
]


@pytest.mark.parametrize(("path", "good", "bad", "value"), PATCHES)
def test_patch_with_one_bad_field_changes_nothing(
    path: str,
    good: str,
    bad: str,
    value: Any,
    server: LiveServer,
    ids: RealIds,
    admin: httpx.Client,
) -> None:
    url = ids.url(path)
    before = admin.get(url).json()

    response = admin.patch(url, json={good: "renamed", bad: value})
    after = admin.get(url).json()
    audits = _audits(server, response)

    assert refusal_problem(response, bad) is None
    assert after == before and after[good] != "renamed"
    assert audits == []


# -- limits of the query compiler --------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/case/_search"),
        ("GET", "/api/case/artifact/{observable_id}/similar"),
    ],
    ids=["search", "similar"],
)
def test_range_starting_with_5000_digits_is_refused(
    method: str, path: str, ids: RealIds, admin: httpx.Client
) -> None:
    url = ids.url(path)

    response = admin.request(method, url, params={"range": "9" * 5000})

    assert refusal_problem(response, "range") is None


def test_search_for_a_60000_character_title_does_not_fail(
    request: pytest.FixtureRequest, server: LiveServer, admin: httpx.Client
) -> None:
    # The pattern is only matched, and refused, when a case exists.
    admin.post("/api/case", json={"title": "t", "description": "d"})
    response = admin.post("/api/case/_search", json={"query": {"title": "x" * 60_000}})

    assert response.status_code in (200, 400), response.text
