"""The localhost HTTP server (talks to the engine only through EngineAPI)."""
