"""Agent definitions in DuckDB: create, read, list, partial update, delete, export, import.

The whole `AgentDefinition` is stored as JSON next to the columns lists are
filtered and sorted by. Export writes one YAML file holding the definition,
its skills and knowledge references, and its prompt template (inlined when it
is a file, so the export is self-contained).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workbench.engine.errors import Conflict, InvalidRequest, NotFound
from workbench.engine.schemas import AgentDefinition, AgentPage, validate
from workbench.engine.store.db import Database, utcnow

EXPORT_FORMAT = "workbench-agent/1"
SORTS = {"created_at", "updated_at", "name", "id"}
#: fields `update` may not change
FROZEN = {"id", "created_at", "updated_at"}
MAX_IMPORT_BYTES = 2_000_000


class AgentStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, definition: AgentDefinition | dict[str, Any]) -> AgentDefinition:
        agent: AgentDefinition = validate(AgentDefinition, definition)
        now = utcnow()
        agent = agent.model_copy(update={"created_at": now, "updated_at": now})
        self._check_parent(agent)
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM agents WHERE id = ?", [agent.id]).fetchone():
                raise Conflict(f"An agent with id {agent.id!r} already exists.")
            conn.execute(
                "INSERT INTO agents VALUES (?, ?, ?, ?, ?, ?, ?)",
                [agent.id, agent.name, agent.role, agent.status, agent.model_dump_json(), now, now],
            )
        return agent

    def get(self, agent_id: str) -> AgentDefinition:
        row = self.db.fetchone("SELECT definition FROM agents WHERE id = ?", [agent_id])
        if row is None:
            raise NotFound(f"No agent {agent_id!r}; `workbench agents list` shows them.")
        return AgentDefinition.model_validate_json(row[0])

    def list(
        self,
        page: int = 1,
        per_page: int = 20,
        sort: str = "-created_at",
        role: str | None = None,
        status: str | None = None,
        parent: str | None = None,
        query: str | None = None,
    ) -> AgentPage:
        if not 1 <= page <= 10_000_000 or not 1 <= per_page <= 100:
            raise InvalidRequest("page must be 1..10,000,000 and per_page 1..100.")
        column = sort.lstrip("-")
        if column not in SORTS:
            raise InvalidRequest(f"sort must be one of {', '.join(sorted(SORTS))} (prefix '-' for descending).")
        where, params = [], []
        for name, value in (("role", role), ("status", status)):
            if value is not None:
                where.append(f"{name} = ?")
                params.append(value)
        if parent is not None:
            where.append("json_extract_string(definition, '$.parent') = ?")
            params.append(parent)
        if query:
            where.append("(name ILIKE ? OR id ILIKE ?)")
            pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            params += [pattern, pattern]
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        total = self.db.fetchone(f"SELECT count(*) FROM agents{clause}", params)[0]
        key = "lower(name)" if column == "name" else column
        order = f"{key} {'DESC' if sort.startswith('-') else 'ASC'}, id ASC"
        rows = self.db.fetchall(
            f"SELECT definition FROM agents{clause} ORDER BY {order} LIMIT ? OFFSET ?",
            [*params, per_page, (page - 1) * per_page],
        )
        items = [AgentDefinition.model_validate_json(r[0]) for r in rows]
        return AgentPage(items=items, total=int(total), page=page, per_page=per_page)

    def update(self, agent_id: str, changes: dict[str, Any]) -> AgentDefinition:
        """Apply a partial update (nested settings are merged key by key)."""
        if not isinstance(changes, dict):
            raise InvalidRequest("An agent update is a JSON object of the fields to change.")
        frozen = FROZEN & changes.keys()
        if frozen:
            raise InvalidRequest(f"These fields cannot be changed: {', '.join(sorted(frozen))}.")
        current = self.get(agent_id)
        merged = current.model_dump(mode="json")
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "metadata":
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        agent: AgentDefinition = validate(AgentDefinition, merged)
        agent = agent.model_copy(update={"updated_at": utcnow(), "created_at": current.created_at})
        self._check_parent(agent)
        self._write(agent)
        return agent

    def replace(self, agent: AgentDefinition) -> AgentDefinition:
        """Store a whole definition for an existing agent (used by the builder)."""
        agent = agent.model_copy(update={"updated_at": utcnow()})
        self._write(agent)
        return agent

    def _write(self, agent: AgentDefinition) -> None:
        with self.db.transaction() as conn:
            if not conn.execute("SELECT 1 FROM agents WHERE id = ?", [agent.id]).fetchone():
                raise NotFound(f"No agent {agent.id!r}.")
            conn.execute(
                "UPDATE agents SET name = ?, role = ?, status = ?, definition = ?, updated_at = ? WHERE id = ?",
                [agent.name, agent.role, agent.status, agent.model_dump_json(), agent.updated_at, agent.id],
            )

    def delete(self, agent_id: str) -> None:
        children = self.db.fetchall(
            "SELECT id FROM agents WHERE json_extract_string(definition, '$.parent') = ?", [agent_id]
        )
        if children:
            names = ", ".join(r[0] for r in children[:5])
            raise Conflict(f"Agent {agent_id!r} is the parent of {names}; delete or re-parent them first.")
        with self.db.transaction() as conn:
            if not conn.execute("SELECT 1 FROM agents WHERE id = ?", [agent_id]).fetchone():
                raise NotFound(f"No agent {agent_id!r}.")
            conn.execute("DELETE FROM agents WHERE id = ?", [agent_id])

    def _check_parent(self, agent: AgentDefinition) -> None:
        if agent.parent is None:
            return
        row = self.db.fetchone("SELECT role FROM agents WHERE id = ?", [agent.parent])
        if row is None:
            raise InvalidRequest(f"The parent agent {agent.parent!r} does not exist.")
        if row[0] == "micro":
            raise InvalidRequest(f"The parent {agent.parent!r} is a micro agent, which cannot have children.")

    # ---------------------------------------------------------- export/import

    def export(self, agent_id: str) -> str:
        """The agent as one self-contained YAML document."""
        import yaml

        from workbench.engine.agents.templates import builtin_templates, get_template

        agent = self.get(agent_id)
        data = agent.model_dump(mode="json", exclude={"created_at", "updated_at"})
        template_name = agent.template
        if template_name in builtin_templates():
            template: dict[str, Any] | str = template_name
        else:
            template = get_template(template_name).model_dump(mode="json")
        document = {
            "format": EXPORT_FORMAT,
            "agent": data,
            "prompt_template": template,
            "skills": data.pop("generated_skills"),
            "knowledge": {
                "collections": list(data["knowledge_collections"]),
                "generated": data.pop("generated_knowledge"),
            },
        }
        return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)

    def parse_export(self, text: str, templates_dir: Path) -> AgentDefinition:
        """Read an export back into a definition (an inlined template is saved under `templates_dir`)."""
        import yaml

        from workbench.engine.agents.templates import PromptTemplate, builtin_templates

        if len(text.encode("utf-8", "surrogatepass")) > MAX_IMPORT_BYTES:
            raise InvalidRequest("An agent file is at most 2 MB.")
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise InvalidRequest(f"The agent file is not valid YAML{where}.") from None
        if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
            raise InvalidRequest(f"This is not a Workbench agent export (expected format: {EXPORT_FORMAT}).")
        agent = document.get("agent")
        if not isinstance(agent, dict):
            raise InvalidRequest("The agent file has no 'agent' mapping.")
        agent = dict(agent)
        agent["generated_skills"] = document.get("skills") or []
        knowledge = document.get("knowledge") or {}
        if not isinstance(knowledge, dict):
            raise InvalidRequest("'knowledge' must be a mapping with 'collections' and 'generated'.")
        agent["generated_knowledge"] = knowledge.get("generated") or []
        if "collections" in knowledge:
            agent["knowledge_collections"] = knowledge["collections"]
        template = document.get("prompt_template", "basic")
        if isinstance(template, str):
            if template not in builtin_templates():
                raise InvalidRequest(f"Unknown built-in prompt template {template!r}.")
            agent["template"] = template
        elif isinstance(template, dict):
            parsed: PromptTemplate = validate(PromptTemplate, template)
            templates_dir.mkdir(parents=True, exist_ok=True)
            path = templates_dir / f"{agent.get('id', 'agent')}-{parsed.name}.json"
            path.write_text(json.dumps(parsed.model_dump(mode="json"), indent=1), encoding="utf-8")
            agent["template"] = str(path)
        else:
            raise InvalidRequest("'prompt_template' must be a built-in name or a template mapping.")
        return validate(AgentDefinition, agent)
