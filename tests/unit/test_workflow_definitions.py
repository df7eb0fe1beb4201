"""Workflow definitions: every refusal names the step and the field, before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.engine.workflows.definition import (
    WorkflowInvalid,
    check,
    load,
    loads,
    render,
    render_value,
)


class Catalog:
    """A small real catalog: two agents, three tools."""

    agents = {"researcher", "writer"}
    tools = {"write_file": "write", "read_file": "read", "run_command": "exec"}

    def has_agent(self, agent_id: str) -> bool:
        return agent_id in self.agents

    def tool_permission(self, name: str) -> str | None:
        return self.tools.get(name)


GOOD = """
name: release
inputs:
  topic: {description: what to write about}
  tone: calm
steps:
  - {id: research, kind: agent, agent: researcher, task: "Research {{ inputs.topic }}"}
  - id: both
    kind: parallel
    max_concurrency: 2
    steps:
      - {id: save, kind: tool, tool: write_file, arguments: {path: notes.md, content: "{{ steps.research.output }}"}}
      - {id: brief, kind: handoff, from: researcher, to: writer, task: "Write, {{ inputs.tone }}", context: "{{ steps.research.output }}"}
  - {id: ok, kind: approval, prompt: "Publish {{ steps.brief.output }}?", timeout_seconds: 60, default: approve}
  - {id: gate, kind: condition, if: {step: ok, equals: approved}, then: publish, else: end}
  - {id: publish, kind: tool, tool: read_file, arguments: {path: notes.md}}
"""


def refuse(text: str, *expected: str) -> str:
    with pytest.raises(WorkflowInvalid) as caught:
        check(loads(text), Catalog())
    message = str(caught.value)
    for part in expected:
        assert part in message, message
    assert "\n" not in message and "Traceback" not in message
    return message


def test_a_good_definition_passes_and_keeps_its_structure() -> None:
    definition = check(loads(GOOD), Catalog())
    assert [s.id for s in definition.steps] == ["research", "both", "ok", "gate", "publish"]
    assert [s.id for s in definition.all_steps()][1:4] == ["both", "save", "brief"]
    assert definition.render_inputs({"topic": "dbos"}) == {"topic": "dbos", "tone": "calm"}


def test_inputs_missing_or_unknown_are_refused() -> None:
    definition = check(loads(GOOD), Catalog())
    with pytest.raises(Exception, match="needs the input"):
        definition.render_inputs({})
    with pytest.raises(Exception, match="has no input"):
        definition.render_inputs({"topic": "x", "colour": "red"})


def test_rendering_uses_steps_and_inputs_in_the_sandbox() -> None:
    steps = {"research": {"output": "found <3> things"}}
    assert (
        render("Use {{ steps.research.output }} for {{ inputs.t }}", steps, {"t": "x"}) == "Use found <3> things for x"
    )
    assert render_value({"a": ["{{ inputs.t }}", 3]}, steps, {"t": "y"}) == {"a": ["y", 3]}
    # a line appended to a file keeps its newline (Jinja would drop it)
    assert render("{{ inputs.t }}\n", steps, {"t": "z"}) == "z\n"
    with pytest.raises(Exception, match="sandbox|failed to render"):
        render("{{ steps.research.output.__class__.__mro__ }}", steps, {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\nsteps: [{id: a, kind: tol}]", ("Step 'a'", "field 'kind'")),
        ("name: x\nsteps: [{id: a}]", ("Step 'a'", "field 'kind'", "no `kind`")),
        ("name: x\nsteps: [{id: a, kind: tool}]", ("Step 'a'", "field 'tool'", "required")),
        ("name: x\nsteps: [{id: a, kind: tool, tool: read_file, argumnts: {}}]", ("Step 'a'", "field 'argumnts'")),
        ("name: x\nsteps: [{id: a, kind: approval, default: maybe}]", ("Step 'a'", "field 'default'")),
        ("name: x\nsteps: [{id: a, kind: approval, timeout_seconds: 0}]", ("Step 'a'", "field 'timeout_seconds'")),
        (
            "name: x\nsteps: [{id: a, kind: parallel, max_concurrency: 0, steps: [{id: b, kind: tool, tool: read_file}]}]",
            ("Step 'a'", "field 'max_concurrency'"),
        ),
        ("name: x\nsteps: [{id: g, kind: parallel, steps: [{id: b, kind: approval}]}]", ("Step 'b'", "field 'kind'")),
        ("name: x\nsteps: [{id: a, kind: condition, if: {step: a}}]", ("Step 'a'", "field 'if'", "contains")),
        ("name: x\nsteps: [{id: Bad, kind: tool, tool: read_file}]", ("field 'id'",)),
        ("name: x\nsteps: []", ("Field 'steps'",)),
        ("steps: [{id: a, kind: tool, tool: read_file}]", ("Field 'name'",)),
        ("- just a list", ("must hold a mapping",)),
        ("name: [x", ("not valid YAML", "line 1")),
    ],
)
def test_shape_errors_name_the_step_and_field(text: str, expected: tuple[str, ...]) -> None:
    refuse(text, *expected)


def test_duplicate_and_reserved_ids_are_refused() -> None:
    refuse(
        "name: x\nsteps: [{id: a, kind: tool, tool: read_file}, {id: a, kind: tool, tool: read_file}]",
        "Step 'a'",
        "field 'id'",
        "same id",
    )
    refuse("name: x\nsteps: [{id: end, kind: tool, tool: read_file}]", "Step 'end'", "reserved")


def test_unknown_references_are_refused() -> None:
    refuse(
        "name: x\nsteps: [{id: a, kind: tool, tool: read_file, arguments: {path: '{{ steps.nope.output }}'}}]",
        "Step 'a'",
        "field 'arguments.path'",
        "`steps.nope` names no step",
    )
    refuse(
        "name: x\nsteps: [{id: a, kind: agent, agent: writer, task: 'do {{ inputs.nope }}'}]",
        "Step 'a'",
        "field 'task'",
        "`inputs.nope` is not a declared input",
    )
    refuse(
        "name: x\nsteps: [{id: a, kind: agent, agent: writer, task: 'do {{ secret }}'}]",
        "Step 'a'",
        "field 'task'",
        "'secret'",
    )
    refuse(
        "name: x\nsteps: [{id: a, kind: agent, agent: writer, task: 'do {{ inputs.__class__ }}'}]",
        "Step 'a'",
        "field 'task'",
        "private",
    )
    refuse(
        "name: x\nsteps: [{id: a, kind: agent, agent: writer, task: 'do {{ inputs.x'}]",
        "Step 'a'",
        "field 'task'",
        "syntax error",
    )
    refuse(
        "name: x\ninputs: [t]\nsteps: [{id: c, kind: condition, if: {input: u, contains: z}}]",
        "Step 'c'",
        "field 'if.input'",
    )


def test_cycles_are_refused() -> None:
    # a step reading its own output, or a later step's
    refuse(
        "name: x\nsteps: [{id: a, kind: agent, agent: writer, task: '{{ steps.a.output }}'}]",
        "Step 'a'",
        "field 'task'",
        "does not run before",
    )
    refuse(
        "name: x\nsteps:\n - {id: a, kind: agent, agent: writer, task: '{{ steps.b.output }}'}\n"
        " - {id: b, kind: agent, agent: writer, task: t}",
        "Step 'a'",
        "does not run before",
    )
    # siblings in one parallel group run together
    refuse(
        "name: x\nsteps:\n - id: g\n   kind: parallel\n   steps:\n"
        "    - {id: a, kind: agent, agent: writer, task: t}\n"
        "    - {id: b, kind: agent, agent: writer, task: '{{ steps.a.output }}'}",
        "Step 'b'",
        "does not run before",
    )
    # jumps backwards
    refuse(
        "name: x\nsteps:\n - {id: a, kind: tool, tool: read_file}\n"
        " - {id: c, kind: condition, if: {step: a, contains: z}, then: a}",
        "Step 'c'",
        "field 'then'",
        "cycle",
    )
    refuse("name: x\nsteps: [{id: a, kind: tool, tool: read_file, next: a}]", "Step 'a'", "field 'next'", "cycle")
    refuse(
        "name: x\nsteps: [{id: c, kind: condition, if: {step: c, contains: z}}]",
        "Step 'c'",
        "field 'if.step'",
        "before this one",
    )
    refuse(
        "name: x\nsteps: [{id: c, kind: condition, if: {step: z, contains: z}, else: nowhere}]",
        "Step 'c'",
        "field 'else'",
        "no step 'nowhere'",
    )


def test_missing_agents_and_tools_are_refused() -> None:
    refuse("name: x\nsteps: [{id: a, kind: agent, agent: ghost, task: t}]", "Step 'a'", "field 'agent'", "'ghost'")
    refuse("name: x\nsteps: [{id: a, kind: handoff, to: ghost, task: t}]", "Step 'a'", "field 'to'", "'ghost'")
    refuse("name: x\nsteps: [{id: a, kind: handoff, from: ghost, to: writer, task: t}]", "Step 'a'", "field 'from'")
    refuse("name: x\nsteps: [{id: a, kind: tool, tool: wrte_file}]", "Step 'a'", "field 'tool'", "'wrte_file'")
    refuse(
        "name: x\nsteps:\n - id: g\n   kind: parallel\n   steps: [{id: a, kind: tool, tool: nope}]",
        "Step 'a'",
        "field 'tool'",
    )


def test_load_reads_a_file_and_refuses_what_is_not_one(tmp_path: Path) -> None:
    path = tmp_path / "flow.yaml"
    path.write_text(GOOD, encoding="utf-8")
    assert load(path, Catalog()).name == "release"
    with pytest.raises(Exception, match="No workflow file"):
        load(tmp_path / "missing.yaml")
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe name")
    with pytest.raises(Exception, match="not UTF-8"):
        load(tmp_path / "bin.yaml")
    (tmp_path / "bad.yaml").write_text("name: x\nsteps: [{id: a, kind: tol}]", encoding="utf-8")
    with pytest.raises(WorkflowInvalid, match="The workflow file bad.yaml is invalid: Step 'a'"):
        load(tmp_path / "bad.yaml")
