-- Core schema: generators, agents, stacks, immutable deployment objects,
-- targeting (explicit, labels, annotations), registrations, events, admin role.

CREATE TABLE admin_role (
    id          smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    pak_hash    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE generators (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz,
    name            text NOT NULL,
    description     text,
    pak_hash        text NOT NULL,
    is_active       boolean NOT NULL DEFAULT true,
    is_system       boolean NOT NULL DEFAULT false,
    last_active_at  timestamptz
);
CREATE UNIQUE INDEX generators_name_live ON generators (name) WHERE deleted_at IS NULL;
CREATE INDEX generators_pak_hash_live ON generators (pak_hash) WHERE deleted_at IS NULL;

CREATE TABLE agents (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz,
    name                text NOT NULL,
    cluster_name        text NOT NULL,
    status              text NOT NULL DEFAULT 'INACTIVE',
    pak_hash            text NOT NULL,
    last_heartbeat      timestamptz,
    k8s_reachable       boolean,
    k8s_api_latency_ms  integer,
    k8s_reported_at     timestamptz
);
CREATE UNIQUE INDEX agents_name_cluster_live ON agents (name, cluster_name)
    WHERE deleted_at IS NULL;
CREATE INDEX agents_pak_hash_live ON agents (pak_hash) WHERE deleted_at IS NULL;

CREATE TABLE agent_generator_registrations (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id       uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    generator_id   uuid NOT NULL REFERENCES generators (id) ON DELETE CASCADE,
    registered_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (agent_id, generator_id)
);
CREATE INDEX agr_generator ON agent_generator_registrations (generator_id);

CREATE TABLE stacks (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz,
    name          text NOT NULL,
    description   text,
    generator_id  uuid NOT NULL REFERENCES generators (id)
);
CREATE UNIQUE INDEX stacks_name_live ON stacks (name) WHERE deleted_at IS NULL;
CREATE INDEX stacks_generator ON stacks (generator_id);

CREATE TABLE stack_labels (
    id        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    stack_id  uuid NOT NULL REFERENCES stacks (id) ON DELETE CASCADE,
    label     text NOT NULL,
    UNIQUE (stack_id, label)
);
CREATE INDEX stack_labels_label ON stack_labels (label);

CREATE TABLE stack_annotations (
    id        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    stack_id  uuid NOT NULL REFERENCES stacks (id) ON DELETE CASCADE,
    key       text NOT NULL,
    value     text NOT NULL,
    UNIQUE (stack_id, key)
);
CREATE INDEX stack_annotations_kv ON stack_annotations (key, value);

CREATE TABLE agent_labels (
    id        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id  uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    label     text NOT NULL,
    UNIQUE (agent_id, label)
);

CREATE TABLE agent_annotations (
    id        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id  uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    key       text NOT NULL,
    value     text NOT NULL,
    UNIQUE (agent_id, key)
);

CREATE TABLE agent_targets (
    id        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id  uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    stack_id  uuid NOT NULL REFERENCES stacks (id) ON DELETE CASCADE,
    UNIQUE (agent_id, stack_id)
);
CREATE INDEX agent_targets_stack ON agent_targets (stack_id);

-- One global, strictly increasing sequence orders every submission.
CREATE TABLE deployment_objects (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz,
    sequence_id         bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    stack_id            uuid NOT NULL REFERENCES stacks (id),
    yaml_content        text NOT NULL,
    yaml_checksum       text NOT NULL,
    submitted_at        timestamptz NOT NULL DEFAULT now(),
    is_deletion_marker  boolean NOT NULL DEFAULT false
);
CREATE INDEX deployment_objects_stack_seq ON deployment_objects (stack_id, sequence_id DESC)
    WHERE deleted_at IS NULL;

-- Deployment objects are immutable snapshots: only soft deletion may change a row.
CREATE FUNCTION deployment_objects_immutable() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'deployment objects are immutable and cannot be deleted'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.yaml_content IS DISTINCT FROM OLD.yaml_content
        OR NEW.yaml_checksum IS DISTINCT FROM OLD.yaml_checksum
        OR NEW.stack_id IS DISTINCT FROM OLD.stack_id
        OR NEW.sequence_id IS DISTINCT FROM OLD.sequence_id
        OR NEW.is_deletion_marker IS DISTINCT FROM OLD.is_deletion_marker
        OR NEW.submitted_at IS DISTINCT FROM OLD.submitted_at
        OR NEW.created_at IS DISTINCT FROM OLD.created_at THEN
        RAISE EXCEPTION 'deployment objects are immutable; only deleted_at may change'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER deployment_objects_immutable
    BEFORE UPDATE OR DELETE ON deployment_objects
    FOR EACH ROW EXECUTE FUNCTION deployment_objects_immutable();

CREATE TABLE agent_events (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    deleted_at            timestamptz,
    agent_id              uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    deployment_object_id  uuid NOT NULL REFERENCES deployment_objects (id),
    event_type            text NOT NULL,
    status                text NOT NULL,
    message               text
);
CREATE INDEX agent_events_agent_object ON agent_events (agent_id, deployment_object_id);
CREATE INDEX agent_events_object ON agent_events (deployment_object_id);
