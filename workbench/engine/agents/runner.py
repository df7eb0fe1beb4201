"""The agent runner: one loop for every model.

    build the prompt (instructions, cited knowledge, memories, the task)
    repeat up to max_steps:
        check the budget tripwires
        route: offer the allowed tools closest to the task (and the last result)
        ask the model for one step (local: under a JSON-Schema grammar;
                                    remote: the provider's native tool calling)
        final answer  -> response guardrails, dangerous-output tripwire, finish
        tool call     -> guardrails, loop check, approval if the permission needs it,
                         execute through the registry (validated, bounded, audited),
                         feed the result (or the error, or the denial) back

Everything the run does is an event (`workbench.engine.schemas.AgentEvent`);
every event but token deltas is persisted through the run store
(`workbench.engine.agents.run_store`), which keeps the run's row current, so
the Clinic can show any run, even one that was interrupted.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from workbench.engine.agents import hints
from workbench.engine.agents.services import RunnerServices
from workbench.engine.agents.step import FINAL, PROTOCOL, Proposal, describe_tools, parse_step, step_schema
from workbench.engine.errors import WorkbenchError
from workbench.engine.inference.base import ChatModel, StreamEnd
from workbench.engine.schemas import (
    AgentDefinition,
    AgentEvent,
    AgentRunFinished,
    AgentRunRecord,
    AgentRunStarted,
    ApprovalRequested,
    ApprovalResolved,
    ChatMessage,
    GuardrailTriggered,
    ResponseFormat,
    RunRequest,
    SamplingParams,
    StepFinished,
    StepStarted,
    ToolCall,
    ToolCallProposed,
    ToolExecution,
    ToolResult,
    ToolSpec,
)
from workbench.engine.store.conversations import new_id
from workbench.engine.store.db import utcnow
from workbench.engine.tools.base import Tool, ToolContext

log = logging.getLogger("workbench.agents")

#: tool output fed back to the model is cut to this many characters
FEEDBACK_CHARS = 2000
#: tokens a local step may generate
STEP_MAX_TOKENS = 768
#: the one retry of a step cut off by the token limit
RETRY_TEMPERATURE = 0.5
RETRY_SEED = 7
RETRY_REPETITION_PENALTY = 1.3
#: small models loop on a phrase when greedy; a mild penalty stops that
STEP_REPETITION_PENALTY = 1.1
#: said after each result fed back to a local model
NEXT_STEP = "If this result answers the task, give the final answer now; otherwise call the next tool."
#: said instead when the next local step may only answer (measured: told "otherwise call
#: the next tool" with no tool left, the 135M model answered "No, call the next tool.")
ANSWER_NOW = "Answer the task from this result now."
#: an identical call proposed this many times ends the run
LOOP_LIMIT = 3
#: said when a local model repeats a call that worked (its next step may only answer)
REPEATED_NOTE = "You already called {tool} with these arguments and got the result above. Use it: answer now."
#: the runner's own instructions, and fragments of them small models paraphrase around:
#: an "answer" that repeats one is no answer (the run fails)
HARNESS_TEXTS = (
    NEXT_STEP,
    ANSWER_NOW,
    "call the next tool",
    "You already called",
    "got the result above",
    "Use it: answer now",
    "Do not retry it; answer without it or try something else",
    "No tools are available now: give the final answer",
    *PROTOCOL.split(". "),
)
#: built-in tools whose arguments the step grammar narrows to existing paths
PATH_TOOLS = ("read_file", "list_dir", "search_files")
#: knowledge passages and how close (cosine) a vector-only hit must be
KNOWLEDGE_TOP_K = 3
KNOWLEDGE_MIN_SIMILARITY = 0.3
#: a run continuing a chat session sees this many of its latest messages, each cut to HISTORY_CHARS
HISTORY_MESSAGES = 8
HISTORY_CHARS = 2000


@dataclass
class StepPlan:
    offered: list[str]
    proposal: Proposal
    raw: str
    #: the proposal parsed and its arguments fit the chosen tool's schema
    valid: bool
    model_ms: float
    route_ms: float
    completion_tokens: int


@dataclass
class _Run:
    """The mutable state of one run."""

    record: AgentRunRecord
    agent: AgentDefinition
    messages: list[ChatMessage]
    started: float
    cancelled: threading.Event
    #: the task as given (record.task has secrets redacted)
    task: str = ""
    seq: int = 0
    pending: list[tuple[int, str, str]] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    last_result: str = ""
    #: the next local step offers only the final answer (set after a repeated call)
    answer_next: bool = False
    #: calls (by signature) that failed, with why: repeating one ends the run
    failed_calls: dict[str, str] = field(default_factory=dict)
    #: the last call ran and succeeded
    last_ok: bool = False
    #: the built-in tool of the last call that succeeded
    last_tool: str = ""
    #: invalid steps since the last valid one
    invalid_in_row: int = 0
    #: built-in tools that ran and succeeded in this run
    ran: set[str] = field(default_factory=set)
    #: existing files the task names that no read_file call has read yet
    unread: list[str] = field(default_factory=list)
    #: the model calls tools natively (remote providers)
    native: bool = False
    #: the workspace as path choices for a local model's file tools (None: not listed)
    listing: hints.Listing | None = None
    #: the chat session the run continues, and its latest turns (the run's context)
    session_id: str | None = None
    history: list[ChatMessage] = field(default_factory=list)


class AgentRunner:
    def __init__(self, services: RunnerServices) -> None:
        self.services = services
        self.runs = runs = services.runs
        self._cancel: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        # Runs left "running" by a process that died can never finish.
        runs.interrupt_running()

    def cancel(self, run_id: str) -> bool:
        with self._lock:
            event = self._cancel.get(run_id)
        if event is None:
            return False
        event.set()
        return True

    # ------------------------------------------------------------------ run

    def run(self, agent: AgentDefinition, request: RunRequest) -> Iterator[AgentEvent]:
        """Prepare the run (errors raise here), then stream its events."""
        from workbench.engine.guard.policy import Guardrails

        model = self.services.models.chat_model(request.model or agent.model)
        tools = self.services.tools().allowed(agent.tools)
        max_steps = request.max_steps or agent.max_steps
        history = self._history(request.session_id) if request.session_id else []
        # A key pasted into a task is never stored (the prompt guardrail reports it in the run).
        task = Guardrails(agent.guardrails).redact(request.task)
        record = AgentRunRecord(
            id=new_id("run"),
            agent_id=agent.id,
            task=task,
            model=model.model_id,
            status="running",
            started_at=utcnow(),
        )
        self.runs.start(record)
        cancelled = threading.Event()
        with self._lock:
            self._cancel[record.id] = cancelled
        state = _Run(
            record=record,
            agent=agent,
            messages=[],
            started=time.perf_counter(),
            cancelled=cancelled,
            task=request.task,
            session_id=request.session_id,
            history=history,
        )
        return self._loop(state, model, tools, max_steps)

    def _history(self, session_id: str) -> list[ChatMessage]:
        """The session's latest user and assistant messages (`NotFound` for an unknown session)."""
        conversations = self.services.sessions
        conversations.get_session(session_id)
        turns = [m for m in conversations.messages(session_id) if m.role in ("user", "assistant")]
        return [ChatMessage(role=m.role, content=m.content[:HISTORY_CHARS]) for m in turns[-HISTORY_MESSAGES:]]

    def _loop(self, state: _Run, model: ChatModel, tools: list[Tool], max_steps: int) -> Iterator[AgentEvent]:
        from workbench.engine.guard.policy import Guardrails
        from workbench.engine.guard.tripwires import Tripwires

        agent, record = state.agent, state.record
        guard = Guardrails(agent.guardrails)
        trips = Tripwires(agent.tripwires, max_steps)
        # Anomalies are judged against this agent's recent steps, not only this run's.
        trips.seed("step_completion_tokens", self.runs.recent_step_tokens(agent.id))
        context = self.services.tool_context(agent.id)
        context.run_id = record.id
        native = state.native = getattr(model, "supports_tools", False)
        if not native and any(t.name in PATH_TOOLS and t.source == "builtin" for t in tools):
            state.listing = _listing(context)
            state.unread = hints.named_files(state.task, state.listing)
        try:
            yield self._emit(
                state,
                AgentRunStarted(
                    run_id=record.id,
                    agent_id=agent.id,
                    model=record.model,
                    task=record.task,
                    session_id=state.session_id,
                ),
            )
            prompt = guard.check_prompt(state.task)
            for violation in prompt.violations:
                yield self._emit(state, GuardrailTriggered(run_id=record.id, step=0, violation=violation))
            if prompt.blocked:
                yield self._finish(state, "blocked", error=_reason(prompt.violations))
                return
            state.messages = self._prompt(agent, prompt.text, tools, model, state.history)
            for step in range(1, max_steps + 1):
                if state.cancelled.is_set():
                    yield self._finish(state, "cancelled", error="The run was cancelled.")
                    return
                budget = trips.check_budget(step - 1, record.prompt_tokens + record.completion_tokens)
                if budget:
                    for violation in budget:
                        yield self._emit(state, GuardrailTriggered(run_id=record.id, step=step, violation=violation))
                    yield self._finish(state, "blocked", error=_reason(budget))
                    return
                step_started = time.perf_counter()
                offered, route_ms, require_tool = self._route(state, tools)
                if state.answer_next and not native:
                    offered, require_tool, state.answer_next = [], False, False
                yield self._emit(
                    state, StepStarted(run_id=record.id, step=step, offered_tools=[t.name for t in offered])
                )
                model_started = time.perf_counter()
                if native:
                    proposal, raw, end, call_id = self._native_step(model, state.messages, offered)
                else:
                    proposal, raw, end = self._local_step(
                        model, state.messages, offered, require_tool=require_tool, state=state
                    )
                    call_id = new_id("call")
                model_ms = (time.perf_counter() - model_started) * 1000 + route_ms
                record.steps = step
                record.prompt_tokens += end.prompt_tokens
                record.completion_tokens += end.completion_tokens
                anomaly = trips.observe("step_completion_tokens", float(end.completion_tokens))
                if anomaly is not None:
                    yield self._emit(state, GuardrailTriggered(run_id=record.id, step=step, violation=anomaly))
                waited_ms = 0.0
                tool_ms = 0.0
                outcome: str | None = None  # a terminal status, when the run ends in this step
                error: str | None = None
                if proposal.error is not None and proposal.action not in {t.name for t in offered}:
                    self._feed_back(state, native, raw, None, call_id, f"Error: {proposal.error}")
                    action = "invalid"
                    state.invalid_in_row += 1
                    if state.invalid_in_row >= LOOP_LIMIT:
                        outcome, error = (
                            "failed",
                            (
                                f"The model gave {LOOP_LIMIT} invalid steps in a row "
                                f"({proposal.error}); the run was stopped."
                            ),
                        )
                elif proposal.action == FINAL:
                    action = FINAL
                    state.invalid_in_row = 0
                    checked = guard.check_response(proposal.answer or "")
                    violations = checked.violations + trips.check_output(checked.text)
                    for violation in violations:
                        yield self._emit(state, GuardrailTriggered(run_id=record.id, step=step, violation=violation))
                    if any(v.action == "block" for v in violations):
                        outcome, error = "blocked", _reason([v for v in violations if v.action == "block"])
                    elif _echoes_harness(checked.text):
                        record.answer = checked.text
                        outcome, error = (
                            "failed",
                            (
                                "The model repeated the workbench's instructions instead of "
                                "answering; the run did not finish its task."
                            ),
                        )
                    else:
                        record.answer = checked.text
                        outcome = "finished"
                else:
                    action = "tool_call"
                    state.invalid_in_row = 0
                    tool = next(t for t in offered if t.name == proposal.action)
                    result_text, waited_ms, tool_ms, stop = yield from self._call(
                        state, guard, trips, context, tool, proposal, call_id, step
                    )
                    if not native and state.last_ok and tool.source == "builtin":
                        # A small model reads a short labelled summary better than raw JSON.
                        result_text = hints.summarise(tool.name, proposal.arguments, result_text, task=state.task)
                    if stop is not None:
                        outcome, error = stop
                    elif state.last_ok and not native and not state.unread and agent.routing.answer_after_result:
                        # Offered tools after a result, a tiny model calls another one
                        # (measured: read docs/guide.md, then run_command "install.md").
                        state.answer_next = True
                    self._feed_back(
                        state,
                        native,
                        raw,
                        ToolCall(id=call_id, name=tool.name, arguments=proposal.arguments),
                        call_id,
                        result_text,
                        tool_name=tool.name,
                    )
                overhead_ms = (time.perf_counter() - step_started) * 1000 - model_ms - waited_ms - tool_ms
                yield self._emit(
                    state,
                    StepFinished(
                        run_id=record.id,
                        step=step,
                        action=action,
                        output=guard.redact(raw)[:4000],
                        model_ms=round(model_ms, 3),
                        overhead_ms=round(max(overhead_ms, 0.0), 3),
                        prompt_tokens=end.prompt_tokens,
                        completion_tokens=end.completion_tokens,
                    ),
                )
                if outcome is not None:
                    yield self._finish(state, outcome, error=error)
                    return
            yield self._finish(
                state, "max_steps", error=f"The agent used all {max_steps} steps without a final answer."
            )
        except GeneratorExit:
            self._close(state, "cancelled", "The run was stopped by its consumer.")
            raise
        except WorkbenchError as exc:
            yield self._finish(state, "failed", error=str(exc))
        except Exception as exc:  # a bug: the run ends failed, the log has the trace
            log.exception("agent run %s failed", record.id)
            yield self._finish(state, "failed", error=f"The run failed unexpectedly ({type(exc).__name__}).")
        finally:
            with self._lock:
                self._cancel.pop(record.id, None)

    def plan_step(self, agent: AgentDefinition, task: str, *, constrained: bool = True) -> StepPlan:
        """What the agent would do first for `task`, without running any tool or storing anything.

        Used to measure tool selection (with and without routing, with and
        without the grammar) on the default model.
        """
        from jsonschema import Draft202012Validator

        model = self.services.models.chat_model(agent.model)
        tools = self.services.tools().allowed(agent.tools)
        record = AgentRunRecord(
            id="plan", agent_id=agent.id, task=task, model=model.model_id, status="running", started_at=utcnow()
        )
        state = _Run(
            record=record,
            agent=agent,
            messages=self._prompt(agent, task, tools, model),
            started=time.perf_counter(),
            cancelled=threading.Event(),
        )
        if any(t.name in PATH_TOOLS and t.source == "builtin" for t in tools):
            state.listing = _listing(self.services.tool_context(agent.id))
            state.unread = hints.named_files(task, state.listing)
        offered, route_ms, require_tool = self._route(state, tools)
        started = time.perf_counter()
        proposal, raw, end = self._local_step(
            model, state.messages, offered, constrained=constrained, require_tool=require_tool, state=state
        )
        model_ms = (time.perf_counter() - started) * 1000
        valid = proposal.error is None
        if valid and proposal.action != FINAL:
            tool = next(t for t in offered if t.name == proposal.action)
            valid = not any(Draft202012Validator(tool.parameters).iter_errors(proposal.arguments))
        return StepPlan(
            offered=[t.name for t in offered],
            proposal=proposal,
            raw=raw,
            valid=valid,
            model_ms=model_ms,
            route_ms=route_ms,
            completion_tokens=end.completion_tokens,
        )

    # --------------------------------------------------------------- prompt

    def _prompt(
        self,
        agent: AgentDefinition,
        task: str,
        tools: list[Tool],
        model: ChatModel,
        history: list[ChatMessage] | None = None,
    ) -> list[ChatMessage]:
        """System prompt (instructions, knowledge, memories, skills), earlier chat turns if any, then the task."""
        from workbench.engine.agents.templates import get_template, render

        services = self.services
        knowledge: list[dict[str, Any]] = []
        local = not getattr(model, "supports_tools", False)
        for collection in agent.knowledge_collections:
            try:
                hits = services.search({"query": task, "collection": collection, "top_k": KNOWLEDGE_TOP_K}).hits
            except WorkbenchError as exc:
                log.warning("knowledge search of %s failed: %s", collection, exc)
                continue
            for hit in hits:
                if hit.pinned or hit.bm25_rank is not None or (hit.vector_score or 0.0) >= KNOWLEDGE_MIN_SIMILARITY:
                    source = hints.source_name(hit.path) if local else hit.path
                    knowledge.append({"n": len(knowledge) + 1, "source": source, "text": hit.text[:1500]})
        memories: list[dict[str, Any]] = []
        if agent.memory.enabled and agent.memory.recall_top_k:
            namespace = agent.memory.namespace or f"agent:{agent.id}"
            if services.has_memories(namespace):
                found = services.retrieve(
                    {"query": task, "top_k": agent.memory.recall_top_k, "filter": {"namespace": namespace}}
                )
                memories = [{"key": r.key, "text": _memory_text(r.value)} for r in found.results]
        rendered = render(
            get_template(agent.template),
            {
                "agent_name": agent.name,
                "instructions": agent.instructions,
                "task": task,
                # a local model is shown the tools of each step with that step (see _local_step)
                "tools": [{"name": t.name, "description": t.description} for t in tools]
                if getattr(model, "supports_tools", False)
                else [],
                "knowledge": knowledge,
                "memories": memories,
                "skills": [{"name": s.name, "description": s.description} for s in agent.generated_skills],
            },
        )
        system = rendered.system
        if not getattr(model, "supports_tools", False):
            system = f"{system}\n\n{PROTOCOL}".strip()
        return [
            ChatMessage(role="system", content=system),
            *(history or []),
            ChatMessage(role="user", content=rendered.user),
        ]

    def _route(self, state: _Run, tools: list[Tool]) -> tuple[list[Tool], float, bool]:
        """The tools to offer in this step, the time routing took, and whether a tool call is required."""
        offered, route_ms, require = self._routed(state, tools)
        if state.native:
            return offered, route_ms, require
        builtin = {t.name: t for t in tools if t.source == "builtin"}
        for name in hints.path_tools(state.task or state.record.task, state.listing):
            # The paths the task names say which file tool it needs, whatever the
            # meaning-based ranking offered (see hints.path_tools).
            if name in builtin and name not in state.ran and builtin[name] not in offered:
                offered = [*offered, builtin[name]]
        reader = builtin.get("read_file")
        if state.unread and reader is not None and not state.native:
            # The task names a file that exists and is still unread: a listing or a search
            # is no summary of it (measured: "list the files in the workspace and summarise
            # README.md" was answered with the listing).
            offered = offered if reader in offered else [*offered, reader]
            require = True
        return offered, route_ms, require

    def _routed(self, state: _Run, tools: list[Tool]) -> tuple[list[Tool], float, bool]:
        routing = state.agent.routing
        if not routing.enabled or not tools or state.native:
            # A model with native tool calling chooses among all allowed tools itself;
            # routing would hide the tool it wants (measured: 3 of 12 end-to-end tasks).
            return tools, 0.0, False
        started = time.perf_counter()
        query = state.record.task if not state.last_result else f"{state.record.task}\n{state.last_result[:500]}"
        offered, best = self.services.router().route(query, tools, routing.top_k, routing.margin)
        require = routing.require_tool_score is not None and not state.calls and best >= routing.require_tool_score
        return offered, (time.perf_counter() - started) * 1000, require

    # ---------------------------------------------------------------- steps

    def _local_step(
        self,
        model: ChatModel,
        messages: list[ChatMessage],
        offered: list[Tool],
        constrained: bool = True,
        require_tool: bool = False,
        state: _Run | None = None,
    ) -> tuple[Proposal, str, StreamEnd]:
        choices: dict[str, dict[str, list[str]]] = {}
        if state is not None:
            for tool in offered:
                allowed = hints.choices(
                    tool.name,
                    tool.source,
                    state.task or state.record.task,
                    state.listing,
                    state.agent.knowledge_collections,
                )
                if allowed:
                    choices[tool.name] = allowed
        schema = step_schema(offered, allow_final=not (require_tool and offered), choices=choices)
        if not offered:
            tools_text = "No tools are available now: give the final answer."
        elif require_tool and offered:
            tools_text = "Call one of these tools now:\n" + describe_tools(offered)
        else:
            tools_text = "Tools you can use now:\n" + describe_tools(offered)
        names = [t.name for t in offered if t.source == "builtin"]
        # An answer-only step still shows how an answer uses the last tool's result.
        examples = hints.worked_examples(names or ([state.last_tool] if state is not None and state.last_tool else []))
        if examples:
            tools_text += "\n\n" + examples
        if state is not None and state.listing is not None and any(n in PATH_TOOLS for n in names):
            tools_text += "\n\n" + hints.describe_listing(state.listing)
        system = f"{messages[0].content}\n\n{tools_text}"
        step_messages = [ChatMessage(role="system", content=system), *messages[1:]]
        params = SamplingParams(temperature=0.0, max_tokens=STEP_MAX_TOKENS, repetition_penalty=STEP_REPETITION_PENALTY)
        response_format = ResponseFormat(type="json_object", schema=schema) if constrained else None
        text, end, _ = _collect(model.stream(step_messages, params, response_format))
        if end.finish_reason in ("length", "repetition") and constrained:
            # A greedy small model can loop inside a string until the token limit:
            # sample once more, reproducibly, with a stronger repetition penalty.
            retry = SamplingParams(
                temperature=RETRY_TEMPERATURE,
                seed=RETRY_SEED,
                max_tokens=STEP_MAX_TOKENS,
                repetition_penalty=RETRY_REPETITION_PENALTY,
            )
            text, again, _ = _collect(model.stream(step_messages, retry, response_format))
            end = StreamEnd(
                again.finish_reason,
                end.prompt_tokens + again.prompt_tokens,
                end.completion_tokens + again.completion_tokens,
            )
        if not constrained:
            text = _strip_fences(text)
        if end.finish_reason in ("length", "repetition"):
            return Proposal(action="invalid", error="Your reply was cut off; keep it shorter."), text, end
        return parse_step(text, offered), text, end

    def _native_step(
        self, model: ChatModel, messages: list[ChatMessage], offered: list[Tool]
    ) -> tuple[Proposal, str, StreamEnd, str]:
        specs = [ToolSpec(name=t.name, description=t.description, parameters=t.parameters) for t in offered]
        params = SamplingParams(temperature=0.0, max_tokens=1024)
        text, end, calls = _collect(model.stream(messages, params, None, tools=specs or None))
        if calls:
            call = calls[0]  # one call per step: the others are asked for again if still needed
            raw = json.dumps({"action": call.name, "arguments": call.arguments}, ensure_ascii=False)
            if call.name not in {t.name for t in offered}:
                return (
                    Proposal(action="invalid", error=f"{call.name!r} is not a tool you can use now."),
                    raw,
                    end,
                    call.id,
                )
            return Proposal(action=call.name, arguments=call.arguments), raw, end, call.id
        if not text.strip():
            return Proposal(action="invalid", error="Your reply was empty."), text, end, new_id("call")
        return Proposal(action=FINAL, answer=text), text, end, new_id("call")

    def _call(
        self,
        state: _Run,
        guard: Any,
        trips: Any,
        context: ToolContext,
        tool: Tool,
        proposal: Proposal,
        call_id: str,
        step: int,
    ):
        """Run one proposed call through guardrails, loop check, approval and the registry.

        A generator (events out) returning (text fed back, approval wait ms, tool ms, stop).
        """
        record = state.record
        registry = self.services.tools()
        state.last_ok = False
        # What is stored and shown never carries a detected secret (such a call is refused below).
        shown = _redacted(guard, proposal.arguments)
        yield self._emit(
            state,
            ToolCallProposed(
                run_id=record.id,
                step=step,
                call_id=call_id,
                tool=tool.name,
                arguments=shown,
                permission=tool.permission,
            ),
        )
        if proposal.error is not None:
            execution = registry.record_refusal(
                tool, proposal.arguments, "invalid", proposal.error, run_id=record.id, agent_id=record.agent_id
            )
            yield self._emit(state, ToolResult(run_id=record.id, step=step, call_id=call_id, execution=execution))
            return f"Error: {proposal.error}", 0.0, 0.0, None
        problem = registry.validation_error(tool, proposal.arguments)
        if problem is not None:
            execution = registry.record_refusal(
                tool, proposal.arguments, "invalid", problem, run_id=record.id, agent_id=record.agent_id
            )
            yield self._emit(state, ToolResult(run_id=record.id, step=step, call_id=call_id, execution=execution))
            return f"Error: {problem}", 0.0, 0.0, None
        checked = guard.check_tool_call(tool.name, proposal.arguments)
        violations = checked.violations + trips.check_output(_flatten(proposal.arguments))
        for violation in violations:
            yield self._emit(state, GuardrailTriggered(run_id=record.id, step=step, violation=violation))
        blocking = [v for v in violations if v.action == "block"]
        if blocking:
            reason = _reason(blocking)
            execution = registry.record_refusal(
                tool, shown, "refused", reason, run_id=record.id, agent_id=record.agent_id
            )
            yield self._emit(state, ToolResult(run_id=record.id, step=step, call_id=call_id, execution=execution))
            return f"Refused by policy: {reason}", 0.0, 0.0, None
        signature = tool.name + json.dumps(proposal.arguments, sort_keys=True, ensure_ascii=False)
        state.calls[signature] = state.calls.get(signature, 0) + 1
        if state.calls[signature] >= LOOP_LIMIT:
            reason = f"The agent called {tool.name} with the same arguments {LOOP_LIMIT} times; the loop was stopped."
            execution = registry.record_refusal(
                tool, proposal.arguments, "refused", reason, run_id=record.id, agent_id=record.agent_id
            )
            yield self._emit(state, ToolResult(run_id=record.id, step=step, call_id=call_id, execution=execution))
            return reason, 0.0, 0.0, ("failed", reason)
        if state.calls[signature] > 1 and signature in state.failed_calls:
            # The same failing call again: the model is stuck, and a forced answer
            # would only be about the failure. The run fails, saying why.
            reason = (
                f"The agent repeated a call that had failed ({tool.name}: "
                f"{state.failed_calls[signature][:300]}); the run was stopped."
            )
            execution = registry.record_refusal(
                tool, proposal.arguments, "refused", reason, run_id=record.id, agent_id=record.agent_id
            )
            yield self._emit(state, ToolResult(run_id=record.id, step=step, call_id=call_id, execution=execution))
            return reason, 0.0, 0.0, ("failed", reason)
        if state.calls[signature] > 1:
            # Small models repeat a call whose result they already have: the next
            # step may only answer (a remote model keeps its tools and may go on).
            state.answer_next = True
            note = REPEATED_NOTE.format(tool=tool.name)
            execution = registry.record_refusal(
                tool, proposal.arguments, "refused", note, run_id=record.id, agent_id=record.agent_id
            )
            yield self._emit(state, ToolResult(run_id=record.id, step=step, call_id=call_id, execution=execution))
            return note, 0.0, 0.0, None
        waited_ms = 0.0
        if tool.permission in state.agent.approvals.require or tool.warning:
            approvals = self.services.approvals
            pending = approvals.request(record.id, record.agent_id, tool.name, proposal.arguments, tool.permission)
            self._flush(state)
            wait_started = time.perf_counter()
            yield self._emit(state, ApprovalRequested(run_id=record.id, approval=pending))
            decided = approvals.wait(pending.id, state.agent.approvals.timeout_s, state.cancelled)
            waited_ms = (time.perf_counter() - wait_started) * 1000
            yield self._emit(state, ApprovalResolved(run_id=record.id, approval=decided))
            if decided.status != "approved":
                why = f" ({decided.reason})" if decided.reason else ""
                text = f"The user {'denied' if decided.status == 'denied' else 'did not approve'} this call{why}."
                execution = registry.record_refusal(
                    tool, proposal.arguments, "denied", text, run_id=record.id, agent_id=record.agent_id
                )
                state.failed_calls[signature] = text
                yield self._emit(state, ToolResult(run_id=record.id, step=step, call_id=call_id, execution=execution))
                if state.cancelled.is_set():
                    return text, waited_ms, 0.0, ("cancelled", "The run was cancelled.")
                return text + " Do not retry it; answer without it or try something else.", waited_ms, 0.0, None
        tool_started = time.perf_counter()
        execution = registry.execute(tool, proposal.arguments, context, run_id=record.id, agent_id=record.agent_id)
        tool_ms = (time.perf_counter() - tool_started) * 1000
        output = execution.output or ""
        if execution.ok:
            result = guard.check_tool_result(tool.name, output)
            for violation in result.violations:
                yield self._emit(state, GuardrailTriggered(run_id=record.id, step=step, violation=violation))
            if result.text != output:
                execution = execution.model_copy(update={"output": result.text})
            text = result.text
            state.last_ok = True
            state.last_tool = tool.name if tool.source == "builtin" else ""
            if tool.source == "builtin":
                state.ran.add(tool.name)
            if tool.source == "builtin" and tool.name == "read_file":
                state.unread = [p for p in state.unread if p != proposal.arguments.get("path")]
            elif tool.source == "builtin" and tool.name == "write_file":
                state.unread = []  # the task was a write: nothing is left to read for it
        else:
            text = f"Error: {execution.error}"
            state.failed_calls[signature] = execution.error or execution.status
        yield self._emit(state, ToolResult(run_id=record.id, step=step, call_id=call_id, execution=execution))
        anomaly = trips.observe("tool_ms", execution.duration_ms)
        if anomaly is not None:
            yield self._emit(state, GuardrailTriggered(run_id=record.id, step=step, violation=anomaly))
        state.last_result = text
        return text, waited_ms, tool_ms, None

    def _feed_back(
        self,
        state: _Run,
        native: bool,
        raw: str,
        call: ToolCall | None,
        call_id: str,
        text: str,
        tool_name: str | None = None,
    ) -> None:
        text = text if len(text) <= FEEDBACK_CHARS else text[:FEEDBACK_CHARS] + " [...truncated]"
        if native and call is not None:
            state.messages.append(ChatMessage(role="assistant", content="", tool_calls=[call]))
            state.messages.append(ChatMessage(role="tool", content=text, tool_call_id=call_id, name=tool_name))
            return
        state.messages.append(ChatMessage(role="assistant", content=raw or "(no reply)"))
        label = f"Result of {tool_name}" if tool_name else "Result"
        next_step = ANSWER_NOW if state.answer_next else NEXT_STEP
        state.messages.append(ChatMessage(role="user", content=f"{label}:\n{text}\n\n{next_step}"))

    # ---------------------------------------------------------- persistence

    def _emit(self, state: _Run, event: Any) -> Any:
        state.seq += 1
        state.pending.append((state.seq, event.type, event.model_dump_json()))
        if event.type in ("step_finished", "approval_requested", "agent_run_finished"):
            self._flush(state)
        return event

    def _flush(self, state: _Run) -> None:
        if not state.pending:
            return
        self.runs.append(state.record, state.pending)
        state.pending.clear()

    def _close(self, state: _Run, status: str, error: str | None) -> AgentRunRecord:
        record = state.record
        record.status = status
        record.error = error
        record.finished_at = utcnow()
        record.duration_ms = round((time.perf_counter() - state.started) * 1000, 3)
        self._flush(state)
        self.runs.close(record)
        if state.session_id is not None:
            self._record_in_session(state)
        if status == "finished" and state.agent.memory.remember_runs and record.answer:
            namespace = state.agent.memory.namespace or f"agent:{state.agent.id}"
            self.services.remember(
                {
                    "key": f"run:{record.id}",
                    "namespace": namespace,
                    "kind": "conversation",
                    "value": {"task": record.task, "answer": record.answer},
                }
            )
        return record

    def _record_in_session(self, state: _Run) -> None:
        """The task (as stored: secrets redacted) and the outcome become a turn of the run's chat session."""
        record = state.record
        outcome = record.answer or (f"The run ended: {record.status}." + (f" {record.error}" if record.error else ""))
        try:
            self.services.sessions.get_session(state.session_id)  # deleted while the run went on: nothing to add
            self.services.sessions.record_run_turn(state.session_id, record.task, outcome, record.id)
        except WorkbenchError as exc:
            log.warning("run %s was not added to session %s: %s", record.id, state.session_id, exc)

    def _finish(self, state: _Run, status: str, error: str | None = None) -> AgentRunFinished:
        record = self._close(state, status, error)
        event = AgentRunFinished(run=record.model_copy())
        state.seq += 1
        self.runs.append_event(record.id, state.seq, event.type, event.model_dump_json())
        return event


def _collect(stream: Iterator[Any]) -> tuple[str, StreamEnd, list[ToolCall]]:
    parts: list[str] = []
    calls: list[ToolCall] = []
    end: StreamEnd | None = None
    try:
        for item in stream:
            if isinstance(item, StreamEnd):
                end = item
            elif isinstance(item, ToolCall):
                calls.append(item)
            else:
                parts.append(item)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    if end is None:
        end = StreamEnd("stop", 0, len(parts))
    return "".join(parts), end, calls


def _redacted(guard: Any, value: Any) -> Any:
    """`value` with every string passed through the guardrails' redaction."""
    if isinstance(value, str):
        return guard.redact(value)
    if isinstance(value, dict):
        return {key: _redacted(guard, item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(guard, item) for item in value]
    return value


def _flatten(value: Any) -> str:
    """The string values of tool arguments joined by spaces (an argv list reads as a command line)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return " ".join(_flatten(v) for v in value.values())
    if isinstance(value, list):
        return " ".join(_flatten(v) for v in value)
    return json.dumps(value)


def _listing(context: ToolContext) -> hints.Listing | None:
    """The workspace under the run's roots, or None when there are none."""
    if not context.roots:
        return None
    try:
        return hints.workspace_listing(context.roots)
    except OSError:
        return None


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def _echoes_harness(answer: str) -> bool:
    """Whether a final answer only repeats one of the runner's own instructions."""
    said = _normal(answer).strip(" .")
    if not said:
        return False
    for text in HARNESS_TEXTS:
        harness = _normal(text).strip(" .")
        if harness in said or (len(said) >= 12 and said in harness):
            return True
    return False


def _strip_fences(text: str) -> str:
    """Free-form replies often wrap JSON in a code fence; accept that much, nothing more."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        stripped = stripped.rsplit("```", 1)[0]
    return stripped.strip()


def _reason(violations: list[Any]) -> str:
    return "; ".join(v.detail for v in violations[:3]) or "a guardrail blocked the run"


def _memory_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text[:1000]


__all__ = ["AgentRunner", "ToolExecution"]
