"""Command palette entries of the Chat screen (every screen action, by name; see widgets/palette.py)."""

from __future__ import annotations

#: (title, help, screen action)
CHAT_COMMANDS: list[tuple[str, str, str]] = [
    ("Chat: new chat", "Start a new chat session (Ctrl+N)", "new_session"),
    ("Chat: rename chat", "Rename the open chat session (Ctrl+R)", "rename_session"),
    ("Chat: delete chat", "Delete the open chat session, after confirming (Delete in the list)", "delete_session"),
    ("Chat: search chats", "Search chat titles and messages (Ctrl+F)", "search_sessions"),
    ("Chat: stop generating", "Stop the reply or agent run in progress (Esc)", "stop"),
    ("Chat: choose model", "Pick the model for the next message (Ctrl+O)", "pick_model"),
    ("Chat: choose agent", "Pick an agent or knowledge collection for the next message (Ctrl+G)", "pick_agent"),
    ("Chat: write a message", "Focus the message box", "focus_prompt"),
]
