"""Durable workflows: YAML definitions (`definition`) run on DBOS Transact (`durable`).

Nothing here imports `dbos` at module level: it loads when a workflow starts,
resumes or is answered.
"""
