"""The native API's route table, from which both the router and /api/v1/openapi.json are built."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gitd import __version__
from gitd.http.routing import Match, Router

Handler = Callable[[web.Request, Match], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class ApiRoute:
    method: str
    path: str  # e.g. /api/v1/{types}/{ns}/{name}/tree/{rev}/{path*}
    summary: str
    handler: Handler
    tag: str
    body: dict[str, Any] | None = None  # JSON schema of the request body
    body_type: str = "application/json"
    query: dict[str, str] = field(default_factory=dict)  # name -> description
    public: bool = False  # works without credentials (for public repositories)
    raw: bool = False  # answers raw bytes, not the JSON envelope


def register(router: Router, routes: Iterable[ApiRoute]) -> None:
    for r in routes:
        router.add(r.method, r.path, r.handler, style="api", name=f"api-{r.method.lower()}-{r.path}")


_PARAM_DOC = {
    "types": ("Repository type, plural", {"type": "string", "enum": ["models", "datasets", "spaces", "codes"]}),
    "ns": ("Namespace (user or organisation)", {"type": "string"}),
    "name": ("Repository name", {"type": "string"}),
    "rev": ("Branch, tag or full commit sha (percent-encode '/')", {"type": "string"}),
    "path": ("Path inside the repository", {"type": "string"}),
}


def openapi_document(routes: Iterable[ApiRoute], server_url: str) -> dict[str, Any]:
    envelope = {
        "type": "object",
        "properties": {"msg": {"type": "string", "example": "OK"}, "data": {}},
        "required": ["msg", "data"],
    }
    error = {
        "type": "object",
        "properties": {"msg": {"type": "string"}, "code": {"type": "string"}, "data": {"nullable": True}},
    }
    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        oas_path = re.sub(r"\{(\w+)\*\}", r"{\1}", r.path)
        params = []
        for name in re.findall(r"\{(\w+)\*?\}", r.path):
            desc, schema = _PARAM_DOC.get(name, (name, {"type": "string"}))
            params.append({"name": name, "in": "path", "required": True, "description": desc, "schema": schema})
        for name, desc in r.query.items():
            params.append({"name": name, "in": "query", "required": False, "description": desc,
                           "schema": {"type": "string"}})
        op: dict[str, Any] = {
            "summary": r.summary,
            "tags": [r.tag],
            "operationId": f"{r.method.lower()}_{re.sub(r'[^A-Za-z0-9]+', '_', r.path).strip('_')}",
            "parameters": params,
            "responses": {
                "200": {"description": "OK",
                        "content": {"application/octet-stream": {}} if r.raw
                        else {"application/json": {"schema": envelope}}},
                "default": {"description": "Error", "content": {"application/json": {"schema": error}}},
            },
        }
        if not r.public:
            op["security"] = [{"bearer": []}]
        else:
            op["security"] = [{}, {"bearer": []}]
        if r.body is not None:
            op["requestBody"] = {"required": True, "content": {r.body_type: {"schema": r.body}}}
        paths.setdefault(oas_path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "gitd native API", "version": __version__,
                 "description": "Repositories, files, branches, tags, commits, tokens, SSH keys and organisation "
                                "members. Answers are {\"msg\": \"OK\", \"data\": ...}; errors "
                                "{\"msg\", \"code\", \"data\": null} with the HTTP status."},
        "servers": [{"url": server_url}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "a gitd access token"}}},
        "paths": paths,
    }
