"""The Textual TUI (talks to the engine only through EngineAPI)."""
