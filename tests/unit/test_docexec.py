"""The executed-docs extractor and runner (tests.fixtures.docexec)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from brokkr_dev.base import paths
from brokkr_dev.release import manifests
from tests.docs import guiderun
from tests.fixtures import docexec
from tests.fixtures.docexec import DocError, extract, script

GUIDE = """\
# A guide

Set these first:

<!-- brokkr:env -->
```sh
# where the broker answers
export BROKKR_URL=http://127.0.0.1:3000
```

Not run (no marker):

```sh
rm -rf /
```

<!-- brokkr:exec -->
```sh
echo "one $BROKKR_URL"
COUNT=1
```

<!-- brokkr:exec on=kind timeout=300 -->
```bash
echo kind only
```

<!-- brokkr:exec timeout=5 -->
````sh
echo "two $COUNT"
# ``` does not end a longer fence
````
"""


def test_extract_finds_marked_blocks_in_order_with_their_options():
    blocks = extract(GUIDE, "guide.md")
    assert [(b.kind, b.line) for b in blocks] == [
        ("env", 6),
        ("exec", 18),
        ("exec", 24),
        ("exec", 29),
    ]
    assert blocks[0].exports() == {"BROKKR_URL": "http://127.0.0.1:3000"}
    assert blocks[1].code == 'echo "one $BROKKR_URL"\nCOUNT=1'
    assert blocks[1].on == ("local", "kind") and blocks[1].timeout == 120
    assert blocks[2].on == ("kind",) and blocks[2].timeout == 300
    assert blocks[3].code.endswith("does not end a longer fence")
    assert "rm -rf" not in "".join(b.code for b in blocks)


def test_script_fills_placeholders_and_keeps_only_the_environment_blocks():
    plan = script(extract(GUIDE, "guide.md"), "local", {"BROKKR_URL": "http://h:1 x"})
    assert "export BROKKR_URL='http://h:1 x'" in plan.text
    assert "127.0.0.1:3000" not in plan.text
    assert "kind only" not in plan.text
    assert [b.line for b in plan.blocks] == [18, 29]
    assert plan.timeout == 125


def test_run_shares_state_between_blocks(tmp_path: Path):
    plan = script(extract(GUIDE, "guide.md"), "local", {"BROKKR_URL": "http://h:1"})
    result = docexec.run(plan, tmp_path, os.environ)
    assert result.returncode == 0, result.output
    assert result.output.splitlines() == ["one http://h:1", "two 1"]


def test_a_failing_command_names_the_block_it_came_from(tmp_path: Path):
    text = "<!-- brokkr:exec -->\n```sh\ntrue\n```\n\n<!-- brokkr:exec -->\n```sh\nfalse\n```\n"
    result = docexec.run(script(extract(text, "g.md"), "local", {}), tmp_path, os.environ)
    assert result.returncode != 0
    assert "docexec: failed in g.md:7" in result.output


def test_an_unset_variable_fails_the_run(tmp_path: Path):
    text = "<!-- brokkr:exec -->\n```sh\necho $NOT_SET_ANYWHERE\n```\n"
    result = docexec.run(script(extract(text, "g.md"), "local", {}), tmp_path, os.environ)
    assert result.returncode != 0 and "NOT_SET_ANYWHERE" in result.output


def test_a_timeout_stops_the_whole_process_group(tmp_path: Path):
    text = "<!-- brokkr:exec timeout=1 -->\n```sh\nsleep 30 &\nsleep 30\n```\n"
    result = docexec.run(script(extract(text, "g.md"), "local", {}), tmp_path, os.environ)
    assert result.returncode != 0 and "timed out after 1 s" in result.output
    assert result.seconds < 10


def test_a_failure_returns_at_once_although_a_background_job_holds_the_output(
    tmp_path: Path,
):
    """A guide's `kubectl port-forward &` outlived its failed script and kept the
    output pipe open: the run waited for the whole timeout (18 min on kind)."""
    text = "<!-- brokkr:exec timeout=60 -->\n```sh\nsleep 60 &\necho before; false\n```\n"
    result = docexec.run(script(extract(text, "g.md"), "local", {}), tmp_path, os.environ)
    assert result.returncode != 0 and "before" in result.output
    assert "timed out" not in result.output
    assert result.seconds < 30


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<!-- brokkr:exec -->\ntext\n", "must be followed on the next line by a fenced block"),
        ("<!-- brokkr:exec -->\n```python\nx\n```\n", "opened with ```sh or ```bash"),
        ("<!-- brokkr:exec -->\n```sh\nls\n", "g.md:2: the block opened here is never closed"),
        ("<!-- brokkr:run -->\n```sh\nls\n```\n", "unknown marker brokkr:run"),
        ("<!-- brokkr:exec on=k3d -->\n```sh\nls\n```\n", "on='k3d' names no known environment"),
        ("<!-- brokkr:exec fast -->\n```sh\nls\n```\n", "unknown marker option 'fast'"),
        ("<!-- brokkr:exec timeout=0 -->\n```sh\nls\n```\n", "unknown marker option 'timeout=0'"),
        ("<!-- brokkr:env on=kind -->\n```sh\nexport A=1\n```\n", "brokkr:env takes no options"),
    ],
)
def test_bad_markers_are_refused_with_the_fix(text: str, message: str):
    with pytest.raises(DocError, match=message.replace("(", r"\(").replace("*", r"\*")):
        extract(text, "g.md")


def test_env_blocks_hold_only_exports():
    blocks = extract("<!-- brokkr:env -->\n```sh\nexport A=1\nls\n```\n", "g.md")
    with pytest.raises(DocError, match=r"g.md:4: a brokkr:env block may hold only"):
        blocks[0].exports()


def test_a_placeholder_without_a_fixture_value_is_refused():
    blocks = extract("<!-- brokkr:env -->\n```sh\nexport NOPE=1\n```\n", "g.md")
    with pytest.raises(DocError, match="placeholder NOPE has no value"):
        script(blocks, "local", {"BROKKR_URL": "x"})


def test_a_guide_with_nothing_to_run_in_the_environment_is_refused():
    blocks = extract("<!-- brokkr:exec on=kind -->\n```sh\nls\n```\n", "g.md")
    with pytest.raises(DocError, match="no brokkr:exec block of this guide runs"):
        script(blocks, "local", {})


def test_every_guide_parses_and_the_index_links_each_one():
    guides = paths.REPO_ROOT / "docs" / "operators"
    index = (guides / "README.md").read_text()
    for guide in sorted(guides.glob("*.md")):
        docexec.guide_blocks(guide, paths.REPO_ROOT)  # raises DocError on a bad marker
        if guide.name != "README.md":
            assert f"]({guide.name})" in index, f"{guide.name} is not linked from the index"


def test_every_guide_marked_for_kind_is_run_on_kind():
    """A block marked for kind (or unmarked: every environment) is a claim that it runs
    on real pods; the kind tests run exactly the guides listed in guiderun."""
    marked = {guide.name for guide in guiderun.guides_for("kind")}
    listed = {
        *guiderun.ON_KIND_OWN_INSTALL,
        *guiderun.ON_KIND_SHARED_INSTALL,
        *guiderun.ON_KIND_OWN_TEST,
    }
    assert marked - listed == set(), "marked for kind, not run there: mark it on=local and say why"
    assert listed - marked == set(), "listed to run on kind, but no block of it is marked for kind"


def test_secrets_with_data_finds_only_secrets_that_carry_values():
    rendered = (
        "kind: Secret\nmetadata: {name: a}\ndata: {k: dg==}\n---\n"
        "kind: Secret\nmetadata: {name: b}\n---\n"
        "kind: ConfigMap\nmetadata: {name: c}\ndata: {k: v}\n---\n"
        "kind: Secret\nmetadata: {name: d}\nstringData: {k: v}\n"
    )
    assert manifests.secrets_with_data(rendered) == ["a", "d"]


def test_a_failure_inside_a_shell_function_still_names_the_block(tmp_path: Path):
    text = "<!-- brokkr:exec -->\n```sh\ncheck() { false; }\ncheck\necho not reached\n```\n"
    result = docexec.run(script(extract(text, "g.md"), "local", {}), tmp_path, os.environ)
    assert result.returncode != 0 and "not reached" not in result.output
    assert "docexec: failed in g.md:2" in result.output


def test_yaml_objects_reads_every_document_of_the_yaml_blocks_by_kind(tmp_path: Path):
    guide = tmp_path / "guide.md"
    guide.write_text(
        "Text.\n\n```yaml\nkind: A\nmetadata: {name: one}\n---\nkind: B\n---\n```\n\n"
        "```sh\nkind: A\n```\n\n```yaml\nkind: A\nmetadata: {name: two}\n```\n"
    )
    found = docexec.yaml_objects(guide, "A")
    assert [d["metadata"]["name"] for d in found] == ["one", "two"]  # not the sh block
    assert [d["kind"] for d in docexec.yaml_objects(guide, "A", "B")] == ["A", "B", "A"]
