"""Unit tests of the chart generators and checks in brokkr_dev.charts.lint (no helm needed)."""

from __future__ import annotations

import json

import pytest

from brokkr_dev.charts import lint as charts

VALUES = """\
# header comment, not a description
image:
  # -- Image tag; empty means appVersion.
  tag: ""
  # -- Pull policy.
  # @schema {"enum": ["Always",
  # @schema   "IfNotPresent"]}
  # @changes Deployment:*.imagePullPolicy
  # @changes Pod-test:*.imagePullPolicy
  pullPolicy: IfNotPresent

# -- Labels of the pods,
# continued here.
# @schema {"additionalProperties": {"type": "string"}}
podLabels: {}
# -- Hosts.
# @schema {"items": {"type": "object"}}
hosts:
  - host: a
    paths:
      - path: /
replicas: 2
"""


def test_annotations_attach_to_the_key_below_and_skip_list_contents():
    notes = charts.parse_annotations(VALUES)
    assert notes[("image", "tag")].description == "Image tag; empty means appVersion."
    assert notes[("image", "pullPolicy")].schema == {"enum": ["Always", "IfNotPresent"]}
    assert notes[("podLabels",)].description == "Labels of the pods, continued here."
    assert notes[("image",)].description == ""
    assert notes[("image", "pullPolicy")].changes == [
        "Deployment:*.imagePullPolicy",
        "Pod-test:*.imagePullPolicy",
    ]
    assert notes[("image", "tag")].changes == []
    assert ("hosts", "paths") not in notes and ("host",) not in notes
    assert notes[("replicas",)] == charts.Annotation()


def test_bad_schema_comment_names_the_line_and_key():
    with pytest.raises(charts.ChartError, match=r"line 2: the @schema comment above 'a'"):
        charts.parse_annotations("# @schema {not json}\na: 1\n")


def test_schema_is_strict_for_chart_maps_and_free_for_user_maps():
    schema = charts.generate_schema(VALUES)
    assert schema["additionalProperties"] is False
    image = schema["properties"]["image"]
    assert image["additionalProperties"] is False
    assert image["properties"]["pullPolicy"] == {
        "description": "Pull policy.",
        "type": "string",
        "enum": ["Always", "IfNotPresent"],
    }
    assert schema["properties"]["podLabels"]["additionalProperties"] == {"type": "string"}
    assert schema["properties"]["replicas"] == {"type": "integer"}
    assert schema["properties"]["hosts"]["items"] == {"type": "object"}
    json.dumps(schema)  # serialisable as values.schema.json


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: {}\n", "an empty map needs"),
        ("a: []\n", "an empty list needs"),
        ("a:\n", "null default"),
    ],
)
def test_schema_generation_refuses_ambiguous_defaults(text, message):
    with pytest.raises(charts.ChartError, match=message):
        charts.generate_schema(text)


def test_values_table_lists_each_leaf_with_type_default_and_description():
    table = charts.values_table(VALUES)
    lines = table.splitlines()
    assert lines[0] == "| Key | Type | Default | Description | Changes |"
    assert (
        '| `image.pullPolicy` | string (Always, IfNotPresent) | `"IfNotPresent"` | Pull policy. '
        "| `Deployment:*.imagePullPolicy`<br>`Pod-test:*.imagePullPolicy` |"
    ) in lines
    assert "| `podLabels` | object | `{}` | Labels of the pods, continued here. |  |" in lines
    assert any(line.startswith("| `hosts` | array | `[{") for line in lines)
    assert len(lines) == 2 + 5


def test_readme_table_is_replaced_between_markers_and_markers_are_required():
    readme = f"intro\n{charts.TABLE_START}\nold\n{charts.TABLE_END}\noutro\n"
    updated = charts.readme_with_table(readme, "| new |\n", "c")
    assert updated == f"intro\n{charts.TABLE_START}\n| new |\n{charts.TABLE_END}\noutro\n"
    with pytest.raises(charts.ChartError, match="lacks the values table markers"):
        charts.readme_with_table("no markers", "x", "c")


TEMPLATES = """
{{ .Values.image.pullPolicy }}
{{- $img := .Values.image }}{{ $img.tag }}
{{ toYaml .Values.podLabels }}
{{ range .Values.hosts }}{{ .host }}{{ end }}
"""


def test_dead_values_are_the_keys_no_template_reads():
    assert charts.dead_values(VALUES, TEMPLATES) == ["replicas"]
    assert charts.dead_values(VALUES, TEMPLATES + "{{ .Values.replicas }}") == []
    assert charts.dead_values(VALUES, TEMPLATES.replace("$img.tag", "$img.other")) == [
        "image.tag",
        "replicas",
    ]


def test_a_key_passed_through_a_parent_counts_only_if_its_name_is_read():
    text = '{{ include "x" (dict "image" .Values.image) }}{{ .image.tag }}{{ .pullPolicy }}'
    assert charts.dead_values(VALUES, text) == ["podLabels", "hosts", "replicas"]


def test_unknown_refs_catch_typos_in_templates():
    assert charts.unknown_refs(VALUES, TEMPLATES) == []
    typos = TEMPLATES + "{{ .Values.image.tagg }}{{ $img.pulPolicy }}{{ .Values.podLabels.any }}"
    assert charts.unknown_refs(VALUES, typos) == ["image.pulPolicy", "image.tagg"]


@pytest.mark.parametrize("chart", charts.find_charts(), ids=lambda c: c.name)
def test_committed_generated_files_match_values_and_no_value_is_dead(chart):
    assert charts.check_generated(chart) == []


def test_templates_in_subfolders_count_as_readers(tmp_path):
    (tmp_path / "templates" / "tests").mkdir(parents=True)
    (tmp_path / "templates" / "deployment.yaml").write_text("{{ .Values.image.tag }}\n")
    (tmp_path / "templates" / "tests" / "pod.yaml").write_text("{{ .Values.tests.enabled }}\n")
    text = charts.Chart(tmp_path).templates_text
    assert ".Values.tests.enabled" in text
    assert ".Values.image.tag" in text


def test_bad_values_cases_each_name_the_expected_message():
    cases = charts.bad_values()
    assert {c.chart for c in cases} == {"brokkr-broker", "brokkr-agent"}
    assert all(c.expect.get("helm") for c in cases)


def test_chart_versions_must_follow_the_project(tmp_path):
    (tmp_path / "Chart.yaml").write_text('version: 0.1.0\nappVersion: "0.1.0"\n')
    chart = charts.Chart(tmp_path)
    assert charts.check_versions(chart, "0.1.0") == []
    (problem,) = charts.check_versions(chart, "0.2.0")
    assert "set appVersion to 0.2.0 and version to 0.2.0" in problem


@pytest.mark.parametrize(
    ("chart_version", "ok"),
    [("0.1.1", True), ("0.1.7", True), ("0.1.0-rc.1", False), ("0.2.0", False), ("0.0.9", False)],
)
def test_a_chart_only_fix_may_bump_the_chart_patch_but_not_more(tmp_path, chart_version, ok):
    (tmp_path / "Chart.yaml").write_text(f'version: {chart_version}\nappVersion: "0.1.0"\n')
    assert (charts.check_versions(charts.Chart(tmp_path), "0.1.0") == []) is ok


def test_undocumented_leaves_are_reported():
    assert charts.undocumented(VALUES) == ["replicas"]


def test_leaves_without_a_changes_promise_are_reported():
    assert charts.without_promise(VALUES) == ["image.tag", "podLabels", "hosts", "replicas"]


def test_global_accepts_an_umbrella_charts_other_globals():
    schema = charts.generate_schema('global:\n  # -- r\n  imageRegistry: ""\n')
    assert schema["properties"]["global"]["additionalProperties"] is True
    assert schema["properties"]["global"]["properties"]["imageRegistry"]["type"] == "string"
