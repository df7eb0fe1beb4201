"""Builder panels: an agent's generated knowledge and skills, and the role-model build's progress."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Label, ProgressBar, Static

from workbench.engine.schemas import Capabilities
from workbench.tui.safe import clean, one_line


def capabilities_text(caps: Capabilities, build_error: str | None = None) -> Text:
    """What an agent knows and can do, as literal text (every value comes from the store or the model)."""
    text = Text()
    text.append(clean(caps.name), style="bold")
    if caps.occupation:
        text.append(f" · {clean(caps.occupation)}")
    text.append(f" · {caps.status}\n", style="italic")
    text.append("Tools: ", style="bold")
    text.append((", ".join(clean(t) for t in caps.tools) or "none") + "\n")
    text.append("Collections: ", style="bold")
    text.append((", ".join(clean(c) for c in caps.knowledge_collections) or "none") + "\n")
    if build_error:
        text.append("\nThe build failed: ", style="bold red")
        text.append(clean(build_error) + "\n")
    text.append(f"\nSkills ({len(caps.skills)})\n", style="bold underline")
    for skill in caps.skills:
        text.append("• ")
        text.append(clean(skill.name), style="bold")
        text.append(f" [{clean(skill.category)}]", style="dim")
        if skill.description:
            text.append(f" — {clean(skill.description)}")
        text.append("\n")
    if not caps.skills:
        text.append("none yet\n", style="dim")
    text.append(f"\nKnowledge ({len(caps.knowledge)})\n", style="bold underline")
    for item in caps.knowledge:
        text.append("• ")
        text.append(f"{clean(item.entity.type)}: ", style="bold")
        text.append(clean(item.entity.text))
        text.append(f"  ({one_line(item.source, 40)}, confidence {item.confidence:.2f})\n", style="dim")
    if not caps.knowledge:
        text.append("none yet\n", style="dim")
    return text


class CapabilitiesView(VerticalScroll):
    """The generated knowledge and skills of the agent in the form."""

    def compose(self) -> ComposeResult:
        yield Static("Select an agent, or create one from a role model (ctrl+g).", id="capabilities-text", markup=False)

    def show(self, caps: Capabilities | None, build_error: str | None = None) -> None:
        body = self.query_one("#capabilities-text", Static)
        if caps is None:
            body.update("A new agent has no generated knowledge or skills yet.")
        else:
            body.update(capabilities_text(caps, build_error))
        self.scroll_home(animate=False)


class BuildProgress(Vertical):
    """An indeterminate bar with the step and the elapsed time; shown while a role-model build runs."""

    def compose(self) -> ComposeResult:
        yield Label("", id="build-title", markup=False)
        with Horizontal(id="build-row"):
            yield ProgressBar(total=None, show_eta=False, show_percentage=False, id="build-bar")
            yield Label("", id="build-elapsed")
        yield Label("", id="build-step", markup=False)

    def start(self, title: str) -> None:
        self.query_one("#build-title", Label).update(title)
        self.set_step("Creating the agent…")
        self.set_elapsed(0.0)
        self.add_class("-running")

    def set_step(self, step: str) -> None:
        self.query_one("#build-step", Label).update(step)

    def set_elapsed(self, seconds: float) -> None:
        minutes, secs = divmod(int(seconds), 60)
        self.query_one("#build-elapsed", Label).update(f"{minutes}:{secs:02d} elapsed")

    def stop(self) -> None:
        self.remove_class("-running")
