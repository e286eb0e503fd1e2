"""Our OpenAPI 3 document, served at /docs/openapi.json.

Built from the route table plus the request models, with the response shapes
of the v1 wire contract declared here. Descriptions are our own.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

import brokkr
from brokkr.broker import schemas
from brokkr.broker.http import json_response

_TS = {"type": "string", "format": "date-time"}
_TS_NULL = {"type": "string", "format": "date-time", "nullable": True}
_UUID = {"type": "string", "format": "uuid"}


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props}


def _row(required: list[str], **props: Any) -> dict[str, Any]:
    """A table row: the id and timestamps every table has, then its own columns."""
    return _obj(
        ["id", "created_at", "updated_at", *required],
        id=_UUID,
        created_at=_TS,
        updated_at=_TS,
        deleted_at=_TS_NULL,
        **props,
    )


def _label_rows(kind: str) -> dict[str, dict[str, Any]]:
    """`<Kind>Label` and `<Kind>Annotation`, the rows served by routes/labels.py."""
    owner = {f"{kind}_id": _UUID}
    text = {"type": "string"}
    return {
        f"{kind.title()}Label": _obj(["id", *owner, "label"], id=_UUID, **owner, label=text),
        f"{kind.title()}Annotation": _obj(
            ["id", *owner, "key", "value"], id=_UUID, **owner, key=text, value=text
        ),
    }


RESPONSES: dict[str, dict[str, Any]] = {
    "ErrorResponse": _obj(
        ["code", "message"],
        code={"type": "string"},
        message={"type": "string"},
        details={"type": "object", "nullable": True, "additionalProperties": True},
    ),
    "AuthResponse": _obj(
        ["admin", "readonly"],
        admin={"type": "boolean"},
        agent={"type": "string", "nullable": True},
        generator={"type": "string", "nullable": True},
        readonly={"type": "boolean"},
    ),
    "Generator": _row(
        ["name", "is_active", "is_system"],
        name={"type": "string"},
        description={"type": "string", "nullable": True},
        is_active={"type": "boolean"},
        is_system={"type": "boolean"},
        last_active_at=_TS_NULL,
    ),
    "CreateGeneratorResponse": _obj(
        ["generator", "pak"],
        generator={"$ref": "#/components/schemas/Generator"},
        pak={"type": "string"},
    ),
    "Agent": _row(
        ["name", "cluster_name", "status"],
        name={"type": "string"},
        cluster_name={"type": "string"},
        status={"type": "string"},
        last_heartbeat=_TS_NULL,
        k8s_reachable={"type": "boolean", "nullable": True},
        k8s_api_latency_ms={"type": "integer", "nullable": True},
        k8s_reported_at=_TS_NULL,
    ),
    "CreateAgentResponse": _obj(
        ["agent", "initial_pak"],
        agent={"$ref": "#/components/schemas/Agent"},
        initial_pak={"type": "string"},
    ),
    "RotatedAgentPak": _obj(
        ["agent", "pak"], agent={"$ref": "#/components/schemas/Agent"}, pak={"type": "string"}
    ),
    "AgentGeneratorRegistration": _obj(
        ["id", "agent_id", "generator_id", "registered_at"],
        id=_UUID,
        agent_id=_UUID,
        generator_id=_UUID,
        registered_at=_TS,
    ),
    "AgentTarget": _obj(["id", "agent_id", "stack_id"], id=_UUID, agent_id=_UUID, stack_id=_UUID),
    **_label_rows("agent"),
    "Stack": _row(
        ["name", "generator_id"],
        name={"type": "string"},
        description={"type": "string", "nullable": True},
        generator_id=_UUID,
    ),
    **_label_rows("stack"),
    "DeploymentObject": _row(
        [
            "sequence_id",
            "stack_id",
            "yaml_content",
            "yaml_checksum",
            "submitted_at",
            "is_deletion_marker",
        ],
        sequence_id={"type": "integer", "format": "int64"},
        stack_id=_UUID,
        yaml_content={"type": "string"},
        yaml_checksum={"type": "string"},
        submitted_at=_TS,
        is_deletion_marker={"type": "boolean"},
    ),
    "AgentEvent": _row(
        ["agent_id", "deployment_object_id", "event_type", "status"],
        agent_id=_UUID,
        deployment_object_id=_UUID,
        event_type={"type": "string"},
        status={"type": "string"},
        message={"type": "string", "nullable": True},
    ),
}

# (method, path) -> (summary, roles, request model, success status, response schema)
Op = tuple[str, tuple[str, ...], type[BaseModel] | str | None, int, str | None]


def _label_operations(
    kind: str,
    readers: tuple[str, ...],
    writers: tuple[str, ...],
    label_body: type[BaseModel] | str,
    annotation_body: type[BaseModel],
    *,
    label_note: str = "",
) -> dict[tuple[str, str], Op]:
    """List, add and remove labels and annotations of one kind (routes/labels.py)."""
    a = "an" if kind[0] in "aeiou" else "a"
    base = f"/{kind}s/{{id}}"
    operations: dict[tuple[str, str], Op] = {}
    for item, key, body in (("label", "label", label_body), ("annotation", "key", annotation_body)):
        row = f"{kind.title()}{item.title()}"
        note = label_note if item == "label" else ""
        operations |= {
            ("GET", f"{base}/{item}s"): (f"List {kind} {item}s", readers, None, 200, f"[{row}"),
            ("POST", f"{base}/{item}s"): (f"Add {a} {kind} {item}{note}", writers, body, 201, row),
            ("DELETE", f"{base}/{item}s/{{{key}}}"): (
                f"Remove {a} {kind} {item}",
                writers,
                None,
                204,
                None,
            ),
        }
    return operations


OPERATIONS: dict[tuple[str, str], Op] = {
    ("POST", "/auth/pak"): (
        "Report the role of the presented PAK",
        ("admin", "agent", "generator"),
        None,
        200,
        "AuthResponse",
    ),
    ("GET", "/generators"): ("List generators", ("admin",), None, 200, "[Generator"),
    ("POST", "/generators"): (
        "Create a generator and mint its PAK",
        ("admin",),
        schemas.NewGenerator,
        201,
        "CreateGeneratorResponse",
    ),
    ("GET", "/generators/{id}"): (
        "Read a generator",
        ("admin", "generator"),
        None,
        200,
        "Generator",
    ),
    ("DELETE", "/generators/{id}"): (
        "Soft-delete a generator",
        ("admin", "generator"),
        None,
        204,
        None,
    ),
    ("POST", "/generators/{id}/register"): (
        "Register an agent with a generator",
        ("admin", "agent"),
        schemas.AgentRegistrationBody,
        201,
        "AgentGeneratorRegistration",
    ),
    ("GET", "/agents"): ("List agents", ("admin", "generator"), None, 200, "[Agent"),
    ("POST", "/agents"): (
        "Create an agent and mint its first PAK",
        ("admin",),
        schemas.CreateAgentRequest,
        201,
        "CreateAgentResponse",
    ),
    ("GET", "/agents/"): (
        "Find an agent by name and cluster_name",
        ("admin", "agent"),
        None,
        200,
        "Agent",
    ),
    ("GET", "/agents/{id}"): ("Read an agent", ("admin", "agent"), None, 200, "Agent"),
    ("PUT", "/agents/{id}"): (
        "Change an agent's name, cluster or status",
        ("admin", "agent"),
        schemas.UpdateAgent,
        200,
        "Agent",
    ),
    ("DELETE", "/agents/{id}"): ("Soft-delete an agent", ("admin",), None, 204, None),
    ("POST", "/agents/{id}/heartbeat"): (
        "Record a heartbeat",
        ("agent",),
        schemas.HeartbeatReport,
        204,
        None,
    ),
    ("POST", "/agents/{id}/rotate-pak"): (
        "Replace the agent's PAK",
        ("admin", "agent"),
        None,
        200,
        "RotatedAgentPak",
    ),
    ("GET", "/agents/{id}/stacks"): (
        "Stacks the agent should run",
        ("admin", "agent"),
        None,
        200,
        "[Stack",
    ),
    ("GET", "/agents/{id}/target-state"): (
        "Newest deployment object per stack for the agent (mode=incremental|full)",
        ("admin", "agent"),
        None,
        200,
        "[DeploymentObject",
    ),
    ("GET", "/agents/{id}/targets"): (
        "List explicit targets",
        ("admin", "agent"),
        None,
        200,
        "[AgentTarget",
    ),
    ("POST", "/agents/{id}/targets"): (
        "Target a stack to the agent",
        ("admin", "generator"),
        schemas.NewAgentTarget,
        201,
        "AgentTarget",
    ),
    ("DELETE", "/agents/{id}/targets/{stack_id}"): (
        "Remove a target",
        ("admin", "generator"),
        None,
        204,
        None,
    ),
    **_label_operations(
        "agent", ("admin", "agent"), ("admin",), schemas.NewAgentLabel, schemas.NewAgentAnnotation
    ),
    ("GET", "/agents/{id}/events"): (
        "List the agent's events",
        ("admin", "agent"),
        None,
        200,
        "[AgentEvent",
    ),
    ("POST", "/agents/{id}/events"): (
        "Report an event",
        ("admin", "agent"),
        schemas.NewAgentEvent,
        201,
        "AgentEvent",
    ),
    ("GET", "/agent-events"): (
        "List all events (pak_id narrows to a generator)",
        ("admin",),
        None,
        200,
        "[AgentEvent",
    ),
    ("GET", "/agent-events/{id}"): ("Read an event", ("admin",), None, 200, "AgentEvent"),
    ("GET", "/stacks"): ("List stacks", ("admin", "generator"), None, 200, "[Stack"),
    ("POST", "/stacks"): ("Create a stack", ("admin", "generator"), schemas.NewStack, 201, "Stack"),
    ("GET", "/stacks/{id}"): ("Read a stack", ("admin", "generator"), None, 200, "Stack"),
    ("PUT", "/stacks/{id}"): (
        "Rename a stack",
        ("admin", "generator"),
        schemas.UpdateStack,
        200,
        "Stack",
    ),
    ("DELETE", "/stacks/{id}"): (
        "Soft-delete a stack (adds a deletion marker)",
        ("admin", "generator"),
        None,
        204,
        None,
    ),
    **_label_operations(
        "stack",
        ("admin", "generator", "agent"),
        ("admin", "generator"),
        "string",
        schemas.NewStackAnnotation,
        label_note=" (body: a JSON string)",
    ),
    ("GET", "/stacks/{id}/deployment-objects"): (
        "List a stack's deployment objects",
        ("admin", "generator"),
        None,
        200,
        "[DeploymentObject",
    ),
    ("POST", "/stacks/{id}/deployment-objects"): (
        "Submit a new deployment object (JSON, or raw YAML with ?deletion_marker=)",
        ("admin", "generator"),
        schemas.CreateDeploymentObjectRequest,
        201,
        "DeploymentObject",
    ),
    ("GET", "/deployment-objects/{id}"): (
        "Read a deployment object",
        ("admin", "agent", "generator"),
        None,
        200,
        "DeploymentObject",
    ),
}

_ERRORS = {
    "400": "Invalid request (see code and details)",
    "401": "Missing or unknown PAK",
    "403": "The PAK's role may not do this",
    "404": "Not found",
    "431": "Request line and headers too large (MAX_HEADER_BYTES)",
    "503": "Database unavailable or shutting down",
}
# Answers only routes that read a body can give.
_BODY_ERRORS = {
    "408": "The body did not arrive within BODY_READ_TIMEOUT",
    "413": "Request body too large",
    "415": "Content-Type not accepted here",
}
_CONFLICT = {"409": "Duplicate name, label, annotation, target or registration"}

_BOOL_TEXT = {"type": "string", "enum": ["true", "false"]}
# (method, path) -> query parameters: (name, schema, required)
QUERIES: dict[tuple[str, str], list[tuple[str, dict[str, Any], bool]]] = {
    ("GET", "/agents/"): [
        ("name", {"type": "string"}, True),
        ("cluster_name", {"type": "string"}, True),
    ],
    ("GET", "/agents/{id}/target-state"): [
        ("mode", {"type": "string", "enum": ["incremental", "full"]}, False)
    ],
    ("GET", "/stacks"): [("pak_id", _UUID, False)],
    ("GET", "/agent-events"): [("pak_id", _UUID, False)],
    ("POST", "/stacks/{id}/deployment-objects"): [("deletion_marker", _BOOL_TEXT, False)],
}
# Bodies that may also be sent as raw YAML (with ?deletion_marker= for a marker).
RAW_YAML = {("POST", "/stacks/{id}/deployment-objects")}


def _ref(name: str) -> dict[str, Any]:
    if name.startswith("["):
        return {"type": "array", "items": {"$ref": f"#/components/schemas/{name[1:]}"}}
    return {"$ref": f"#/components/schemas/{name}"}


def _operation(method: str, path: str, op: Op) -> dict[str, Any]:
    summary, roles, body, status, response = op
    params = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": _UUID if name in {"id", "stack_id"} else {"type": "string"},
        }
        for name in re.findall(r"{(\w+)}", path)
    ] + [
        {"name": name, "in": "query", "required": required, "schema": schema}
        for name, schema, required in QUERIES.get((method, path), [])
    ]
    errors = dict(_ERRORS)
    if body is not None:
        errors |= _BODY_ERRORS
    if method in {"POST", "PUT"}:
        errors |= _CONFLICT
    result: dict[str, Any] = {
        "summary": summary,
        "operationId": f"{method.lower()}_{re.sub(r'[^a-z0-9]+', '_', path.lower()).strip('_')}",
        "security": [{f"{role}_pak": []} for role in roles],
        "parameters": params,
        "responses": {
            str(status): {"description": "Success"}
            | ({"content": {"application/json": {"schema": _ref(response)}}} if response else {}),
            **{
                code: {
                    "description": text,
                    "content": {"application/json": {"schema": _ref("ErrorResponse")}},
                }
                for code, text in sorted(errors.items())
            },
        },
    }
    if isinstance(body, type):
        content: dict[str, Any] = {"application/json": {"schema": _ref(body.__name__)}}
        if (method, path) in RAW_YAML:
            content["application/yaml"] = {"schema": {"type": "string"}}
        result["requestBody"] = {
            "required": method != "POST" or not path.endswith("heartbeat"),
            "content": content,
        }
    elif body == "string":
        result["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"type": "string"}}},
        }
    return result


@cache
def document() -> dict[str, Any]:
    """The whole OpenAPI document."""
    components = dict(RESPONSES)
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), op in OPERATIONS.items():
        body = op[2]
        if isinstance(body, type):
            components[body.__name__] = body.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, op)
    auth = {"type": "apiKey", "in": "header", "name": "Authorization"}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Brokkr broker",
            "version": brokkr.__version__,
            "description": "Brokkr v1 core API (wire-compatible subset). Send the PAK raw or "
            "as `Bearer <PAK>` in the Authorization header.",
        },
        "servers": [{"url": "/api/v1"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"admin_pak": auth, "agent_pak": auth, "generator_pak": auth},
        },
    }


async def openapi_endpoint(request: Request) -> Response:
    """Serve the document."""
    return json_response(document())
