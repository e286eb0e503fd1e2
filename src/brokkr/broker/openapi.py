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
    "Generator": _obj(
        ["id", "created_at", "updated_at", "name", "is_active", "is_system"],
        id=_UUID,
        created_at=_TS,
        updated_at=_TS,
        deleted_at=_TS_NULL,
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
    "Agent": _obj(
        ["id", "created_at", "updated_at", "name", "cluster_name", "status"],
        id=_UUID,
        created_at=_TS,
        updated_at=_TS,
        deleted_at=_TS_NULL,
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
    "AgentLabel": _obj(
        ["id", "agent_id", "label"], id=_UUID, agent_id=_UUID, label={"type": "string"}
    ),
    "AgentAnnotation": _obj(
        ["id", "agent_id", "key", "value"],
        id=_UUID,
        agent_id=_UUID,
        key={"type": "string"},
        value={"type": "string"},
    ),
    "Stack": _obj(
        ["id", "created_at", "updated_at", "name", "generator_id"],
        id=_UUID,
        created_at=_TS,
        updated_at=_TS,
        deleted_at=_TS_NULL,
        name={"type": "string"},
        description={"type": "string", "nullable": True},
        generator_id=_UUID,
    ),
    "StackLabel": _obj(
        ["id", "stack_id", "label"], id=_UUID, stack_id=_UUID, label={"type": "string"}
    ),
    "StackAnnotation": _obj(
        ["id", "stack_id", "key", "value"],
        id=_UUID,
        stack_id=_UUID,
        key={"type": "string"},
        value={"type": "string"},
    ),
    "DeploymentObject": _obj(
        [
            "id",
            "created_at",
            "updated_at",
            "sequence_id",
            "stack_id",
            "yaml_content",
            "yaml_checksum",
            "submitted_at",
            "is_deletion_marker",
        ],
        id=_UUID,
        created_at=_TS,
        updated_at=_TS,
        deleted_at=_TS_NULL,
        sequence_id={"type": "integer", "format": "int64"},
        stack_id=_UUID,
        yaml_content={"type": "string"},
        yaml_checksum={"type": "string"},
        submitted_at=_TS,
        is_deletion_marker={"type": "boolean"},
    ),
    "AgentEvent": _obj(
        [
            "id",
            "created_at",
            "updated_at",
            "agent_id",
            "deployment_object_id",
            "event_type",
            "status",
        ],
        id=_UUID,
        created_at=_TS,
        updated_at=_TS,
        deleted_at=_TS_NULL,
        agent_id=_UUID,
        deployment_object_id=_UUID,
        event_type={"type": "string"},
        status={"type": "string"},
        message={"type": "string", "nullable": True},
    ),
}

# (method, path) -> (summary, roles, request model, success status, response schema)
Op = tuple[str, tuple[str, ...], type[BaseModel] | str | None, int, str | None]
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
    ("GET", "/agents/{id}/labels"): (
        "List agent labels",
        ("admin", "agent"),
        None,
        200,
        "[AgentLabel",
    ),
    ("POST", "/agents/{id}/labels"): (
        "Add an agent label",
        ("admin",),
        schemas.NewAgentLabel,
        201,
        "AgentLabel",
    ),
    ("DELETE", "/agents/{id}/labels/{label}"): (
        "Remove an agent label",
        ("admin",),
        None,
        204,
        None,
    ),
    ("GET", "/agents/{id}/annotations"): (
        "List agent annotations",
        ("admin", "agent"),
        None,
        200,
        "[AgentAnnotation",
    ),
    ("POST", "/agents/{id}/annotations"): (
        "Add an agent annotation",
        ("admin",),
        schemas.NewAgentAnnotation,
        201,
        "AgentAnnotation",
    ),
    ("DELETE", "/agents/{id}/annotations/{key}"): (
        "Remove an agent annotation",
        ("admin",),
        None,
        204,
        None,
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
    ("GET", "/stacks/{id}/labels"): (
        "List stack labels",
        ("admin", "generator", "agent"),
        None,
        200,
        "[StackLabel",
    ),
    ("POST", "/stacks/{id}/labels"): (
        "Add a stack label (body: a JSON string)",
        ("admin", "generator"),
        "string",
        201,
        "StackLabel",
    ),
    ("DELETE", "/stacks/{id}/labels/{label}"): (
        "Remove a stack label",
        ("admin", "generator"),
        None,
        204,
        None,
    ),
    ("GET", "/stacks/{id}/annotations"): (
        "List stack annotations",
        ("admin", "generator", "agent"),
        None,
        200,
        "[StackAnnotation",
    ),
    ("POST", "/stacks/{id}/annotations"): (
        "Add a stack annotation",
        ("admin", "generator"),
        schemas.NewStackAnnotation,
        201,
        "StackAnnotation",
    ),
    ("DELETE", "/stacks/{id}/annotations/{key}"): (
        "Remove a stack annotation",
        ("admin", "generator"),
        None,
        204,
        None,
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
    "413": "Request body too large",
    "503": "Database unavailable or shutting down",
}


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
    ]
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
                for code, text in _ERRORS.items()
            },
        },
    }
    if isinstance(body, type):
        result["requestBody"] = {
            "required": method != "POST" or not path.endswith("heartbeat"),
            "content": {"application/json": {"schema": _ref(body.__name__)}},
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
