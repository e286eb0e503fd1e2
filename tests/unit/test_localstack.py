"""The local stack's pure parts: sample stack, summary text."""

import yaml

from brokkr_dev.local import stack as localstack


def test_sample_stack_has_the_objects_up_waits_for():
    documents = list(yaml.safe_load_all(localstack.SAMPLE_STACK))
    kinds = {d["kind"] for d in documents}
    assert kinds == {"Namespace", "ConfigMap", "Deployment", "Service"}
    assert len(localstack.SAMPLE_OBJECTS) == 3


def test_summary_names_the_pak_file_urls_and_next_commands():
    text = localstack.summary(
        {
            "seconds": 12.3,
            "broker_url": "http://127.0.0.1:3000",
            "admin_pak_file": "/x/.local/stack/admin.pak",
            "agent_id": "a1",
            "agent_health": "http://127.0.0.1:8080/health",
            "kubeconfig": "/x/kubeconfig",
            "event": "DEPLOY SUCCESS: applied 4 object(s)",
            "logs": "/x/logs",
        }
    )
    assert "/x/.local/stack/admin.pak" in text
    assert "http://127.0.0.1:3000/api/v1" in text
    assert "nox -s down" in text
    assert "12.3 s" in text
