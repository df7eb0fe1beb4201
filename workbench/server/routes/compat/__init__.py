"""The compatibility APIs: each imitates one outside API family over the same engine.

* `openai`: OpenAI's `/v1` (models, chat completions, embeddings).
* `soma`: SomaAgentHub's inference, memory, RAG and tools routes.
* `chrysalis` and `auth`: Chrysalis's agent, knowledge and skill builders, and its key bootstrap.
* `zahara`: the Zahara gateway and runtimes (`/execute`, `/run`).
* `platform`: the AI Agents Platform (`/api/v1/execute`).
* `tasks`: what the two task APIs share (body validation, unsaved generations, unattended runs).

Each answers in its family's shapes and errors; what the engine does is the
native API's (`workbench.server.routes.native`).
"""
