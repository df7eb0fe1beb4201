"""What an agent definition sent over HTTP may grant with `write:agents` alone.

An agent's tools run with the server's rights, and its `approvals.require` is
what makes a person confirm each write, exec or network call. So a key that
may only write agents must not be able to create or change an agent that
does more than read without asking: over HTTP,

* removing `write`, `exec` or `network` from `approvals.require` (compared with
  the agent's current policy, or the default one for a new agent), and
* adding to `tools` anything but a built-in read-only tool named exactly
  (write/exec/network tools, MCP tools, and patterns, which may match any of them)

need the `admin:agents` scope as well. Keys get `admin:` scopes only when
asked for (`admin:*` or `*`).
"""

from __future__ import annotations

from typing import Any

from workbench.server.security import require_also

ADMIN_SCOPE = "admin:agents"
#: the permission classes whose calls pause a run for a person by default
GUARDED = ("write", "exec", "network")


def read_only_builtins() -> set[str]:
    from workbench.engine.tools.builtin import builtin_tools

    return {tool.name for tool in builtin_tools() if tool.permission == "read"}


def escalations(changes: dict[str, Any], current: Any | None) -> list[str]:
    """What `changes` (a new definition, or changes to `current`) grants beyond `write:agents`."""
    found: list[str] = []
    before_tools = list(current.tools) if current is not None else []
    after_tools = changes.get("tools", before_tools)
    if isinstance(after_tools, list):
        safe = read_only_builtins()
        added = [t for t in after_tools if t not in before_tools and not (isinstance(t, str) and t in safe)]
        if added:
            found.append(f"granting the tool {str(added[0])[:100]!r}")
    before_require = list(current.approvals.require) if current is not None else list(GUARDED)
    approvals = changes.get("approvals")
    after_require = approvals.get("require", before_require) if isinstance(approvals, dict) else before_require
    if isinstance(after_require, list):
        dropped = [p for p in GUARDED if p in before_require and p not in after_require]
        if dropped:
            found.append(f"turning off approvals for {', '.join(dropped)} tools")
    return found


def check_agent_grants(request: Any, changes: dict[str, Any], current: Any | None = None) -> None:
    """403 unless the request's key also grants `admin:agents`, when `changes` widens what the agent may do."""
    found = escalations(changes, current)
    if found:
        require_also(request, ADMIN_SCOPE, " and ".join(found))
