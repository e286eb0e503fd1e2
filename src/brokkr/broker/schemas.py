"""Request bodies of the v1 API (field names are the wire contract).

Fields use strict types so a number where a string belongs is a 400, not a
silent conversion. Every name follows one rule (`names.py`). Unknown fields are ignored, as Brokkr v1 clients may send
read-only fields back (for example a whole Stack on PUT).
"""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from brokkr.broker.names import Name

_LABEL = Field(min_length=1, max_length=64, pattern=r"^\S+$")
_KEY = Field(min_length=1, max_length=253, pattern=r"^\S+$")


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class NewGenerator(_Body):
    name: Name
    description: StrictStr | None = None


class CreateAgentRequest(_Body):
    name: Name
    cluster_name: Name
    generator_ids: list[UUID] = Field(default_factory=list, max_length=1000)


class UpdateAgent(_Body):
    name: Name | None = None
    cluster_name: Name | None = None
    status: StrictStr | None = Field(default=None, min_length=1, max_length=50)


class HeartbeatReport(_Body):
    k8s_reachable: StrictBool | None = None
    k8s_api_latency_ms: StrictInt | None = Field(default=None, ge=0, le=2**31 - 1)


class AgentRegistrationBody(_Body):
    agent_id: UUID | None = None


class NewAgentTarget(_Body):
    agent_id: UUID
    stack_id: UUID


class NewAgentLabel(_Body):
    agent_id: UUID
    label: StrictStr = _LABEL


class NewAgentAnnotation(_Body):
    agent_id: UUID
    key: StrictStr = _KEY
    value: StrictStr = Field(max_length=4096)


class NewStack(_Body):
    name: Name
    generator_id: UUID
    description: StrictStr | None = None


class UpdateStack(_Body):
    name: Name | None = None
    description: StrictStr | None = None


class NewStackLabel(_Body):
    """A stack label is posted as a bare JSON string; this wraps it for validation."""

    label: StrictStr = _LABEL


class NewStackAnnotation(_Body):
    stack_id: UUID
    key: StrictStr = _KEY
    value: StrictStr = Field(max_length=4096)


class CreateDeploymentObjectRequest(_Body):
    yaml_content: StrictStr
    is_deletion_marker: StrictBool = False


class NewAgentEvent(_Body):
    agent_id: UUID
    deployment_object_id: UUID
    event_type: StrictStr = Field(min_length=1, max_length=100)
    status: StrictStr = Field(min_length=1, max_length=50)
    message: StrictStr | None = None
