"""Tool routing: offer a small model only the tools that fit the task.

A 135M model asked to pick among many tools picks poorly; asked to pick among
two or three that are all plausible, it does well. Before each step the
allowed tools are ranked by cosine similarity between the task (plus the last
result) and each tool's description and examples — a tool scores the best
similarity of any of its texts — and only the best `top_k` are offered, and
of those only the ones within `margin` of the best score: when one tool is
clearly closest, the model is offered that tool (and a final answer) alone.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import numpy as np

from workbench.engine.tools.base import Tool


def _texts(tool: Tool) -> list[str]:
    # The name matters too ("read_file" says what the tool does).
    readable = tool.name.rsplit(".", 1)[-1].replace("_", " ")
    return [f"{readable}: {tool.description}", *tool.examples]


class ToolRouter:
    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def _vectors(self, tools: list[Tool]) -> list[np.ndarray]:
        keys = []
        missing: dict[str, list[str]] = {}
        for tool in tools:
            texts = _texts(tool)
            key = hashlib.sha256("\x00".join([tool.name, *texts]).encode()).hexdigest()
            keys.append(key)
            with self._lock:
                if key not in self._cache:
                    missing[key] = texts
        if missing:
            flat = [text for texts in missing.values() for text in texts]
            vectors = np.asarray(self.embedder.embed(flat), dtype=np.float32)
            at = 0
            with self._lock:
                for key, texts in missing.items():
                    self._cache[key] = vectors[at : at + len(texts)]
                    at += len(texts)
        with self._lock:
            return [self._cache[key] for key in keys]

    def rank(self, query: str, tools: list[Tool]) -> list[tuple[Tool, float]]:
        """Tools with their routing score, best first."""
        if not tools:
            return []
        query_vector = np.asarray(self.embedder.embed([query]), dtype=np.float32)[0]
        scored = [(tool, float(np.max(vectors @ query_vector))) for tool, vectors in zip(tools, self._vectors(tools))]
        return sorted(scored, key=lambda pair: -pair[1])

    def route(self, query: str, tools: list[Tool], top_k: int, margin: float = 1.0) -> tuple[list[Tool], float]:
        """The best `top_k` tools within `margin` of the best score, and that best score."""
        ranked = self.rank(query, tools)
        if not ranked:
            return [], -1.0
        best = ranked[0][1]
        return [tool for tool, score in ranked[:top_k] if best - score <= margin], best
