"""The chat prompt: a multi-line TextArea where Enter sends and Ctrl+J (or Shift+Enter) starts a new line."""

from __future__ import annotations

from textual import events
from textual.message import Message
from textual.widgets import TextArea

#: keys that insert a line break instead of sending (Shift+Enter only where the terminal reports it)
NEWLINE_KEYS = ("ctrl+j", "shift+enter", "alt+enter")


class PromptArea(TextArea):
    """Posts `PromptArea.Submitted` with the text on Enter."""

    class Submitted(Message):
        def __init__(self, prompt: PromptArea, text: str) -> None:
            super().__init__()
            self.prompt = prompt
            self.text = text

    def __init__(self, **kwargs: object) -> None:
        super().__init__(soft_wrap=True, show_line_numbers=False, tab_behavior="focus", **kwargs)  # type: ignore[arg-type]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # TextArea binds F6 to select_line, which would hide the app's F6 (Settings) whenever the prompt
        # has focus; disabled here, the key falls through to the app.
        if action == "select_line":
            return False
        return super().check_action(action, parameters)

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self.post_message(self.Submitted(self, self.text))
            return
        if event.key in NEWLINE_KEYS:
            event.stop()
            event.prevent_default()
            start, end = self.selection
            self._replace_via_keyboard("\n", start, end)
            return
        await super()._on_key(event)
