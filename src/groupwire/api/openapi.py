"""The OpenAPI document, completed with what FastAPI cannot infer from the routes.

FastAPI documents a route's parameters, body and 200 answer; this adds the rest of the
contract, so a client (or a fuzzer) reading the document knows every answer it can get:

- the API-key security schemes on every ``/admin`` operation;
- every error status an operation can answer, each with the ``Error`` schema: 400 (bad input,
  or a hook's veto, as Medusa answers its own ``not_allowed``), 401, 403, 404 (an id in the
  path), 409 (an ``Idempotency-Key`` already applied), 412 (``If-Match``), 413 (a body), 422
  (an ``Idempotency-Key`` reused for another request) and 503 (the database is unavailable).
  FastAPI's own 422 "Validation Error" is dropped: validation errors are 400 here;
- the optional ``Idempotency-Key`` header of every write;
- the rule every text field shares: no NUL character (no database stores one), stated as a
  pattern on each string that has no stricter pattern, format or enumeration of its own.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI

from groupwire.api.bodies import JSON_VALUE_REF, NO_NUL

ADMIN_PREFIX = "/admin"
ERROR_REF = "#/components/schemas/Error"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "message"],
    "properties": {
        "type": {"type": "string", "description": "The kind of error, as Medusa names it"},
        "message": {"type": "string"},
    },
}
JSON_VALUE_SCHEMA: dict[str, Any] = {
    "description": "Any JSON value; no text in it holds a NUL character",
    "anyOf": [
        {"type": "string", "pattern": NO_NUL},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
        {"type": "array", "items": {"$ref": JSON_VALUE_REF}},
        {
            "type": "object",
            "propertyNames": {"pattern": NO_NUL},
            "additionalProperties": {"$ref": JSON_VALUE_REF},
        },
    ],
}
ERRORS: dict[str, str] = {
    "400": "Invalid input (`invalid_data`): a parameter or body field breaks a stated rule, "
    "or a group name or customer email is taken; or a before-hook vetoed the change "
    "(`not_allowed`, the message is the hook's reason)",
    "401": "No or bad credentials (`unauthorized`)",
    "403": "The API key lacks the scope this operation needs (`forbidden`)",
    "404": "No such resource, in the path or named in the body (`not_found`)",
    "409": "The `Idempotency-Key` belongs to a change already applied through the Python "
    "library, which stores no answer (`conflict`)",
    "412": "The `If-Match` ETag is not the current version (`precondition_failed`)",
    "413": "The request body is larger than `GROUPWIRE_API_MAX_BODY_BYTES` (`invalid_data`)",
    "422": "An `Idempotency-Key` used before for another request (`not_allowed`)",
    "503": "The database is unavailable; retry later",
}
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
IDEMPOTENCY_KEY_PARAMETER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Makes a retry of this write safe: the same key with the same request "
    "changes nothing again and gets the first answer (docs/api.md, Safe retries)",
    "schema": {"type": "string", "pattern": "^[\\x20-\\x7e]{1,255}$"},
}


def document(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the completed document (built once, then cached)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    components["securitySchemes"] = {
        "apiKey": {"type": "http", "scheme": "bearer", "description": "gw_sk_... secret"},
        "apiKeyBasic": {
            "type": "http",
            "scheme": "basic",
            "description": "The secret as user name, empty password",
        },
    }
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas["JsonValue"] = copy.deepcopy(JSON_VALUE_SCHEMA)
    _forbid_nul(schemas)
    _forbid_nul(schema.get("paths", {}))
    schemas["Error"] = copy.deepcopy(ERROR_SCHEMA)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            _responses(path, method.upper(), operation, schemas)
    return schema


def _responses(path: str, method: str, operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)  # FastAPI's "Validation Error": ours are 400
    statuses = ["503"]
    if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
        operation["security"] = [{"apiKey": []}, {"apiKeyBasic": []}]
        statuses += ["400", "401", "403"]
        if "{" in path or _names_ids(operation, schemas):
            statuses.append("404")
        headers = {
            p.get("name", "").lower()
            for p in operation.get("parameters", [])
            if p.get("in") == "header"
        }
        if "if-match" in headers:
            statuses.append("412")
        if "requestBody" in operation:
            statuses.append("413")
        if method in WRITE_METHODS:
            operation.setdefault("parameters", []).append(copy.deepcopy(IDEMPOTENCY_KEY_PARAMETER))
            statuses += ["409", "422"]
    for status in sorted(statuses):
        responses.setdefault(
            status,
            {
                "description": ERRORS[status],
                "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
            },
        )


def _names_ids(operation: dict[str, Any], schemas: dict[str, Any]) -> bool:
    """Whether the operation's body names other resources (``group_id``, ``add``...)."""
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    ref = body.get("schema", {}).get("$ref", "")
    properties = schemas.get(ref.rpartition("/")[2], {}).get("properties", {})
    return any(name in ("add", "remove") or name.endswith(("_id", "_ids")) for name in properties)


def _forbid_nul(node: Any) -> None:
    """Add the NUL-free pattern to every string schema that has no stricter rule of its own."""
    if isinstance(node, dict):
        stricter = {"pattern", "format", "enum", "const"} & node.keys()
        if node.get("type") == "string" and not stricter:
            node["pattern"] = NO_NUL
        for key, value in node.items():
            if key not in ("responses", "examples", "example", "default"):
                _forbid_nul(value)
    elif isinstance(node, list):
        for item in node:
            _forbid_nul(item)
