"""The local HTTP server: a thin layer over `EngineAPI` (FastAPI + uvicorn), opt-in."""
