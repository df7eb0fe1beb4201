"""The TUI's screens, one module each; every screen reaches the engine only through `EngineAPI`."""
