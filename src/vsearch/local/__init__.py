"""Local operations: everything that starts, watches and stops processes on this machine.

Modules: :mod:`~vsearch.local.processes` (spawn, wait until ready, state file, stop),
:mod:`~vsearch.local.env` (telemetry switches, client environment, variable names shared with
the service), :mod:`~vsearch.local.servers` (MLflow + Prefect), :mod:`~vsearch.local.deployment`
(the nightly deployment's process and lock), :mod:`~vsearch.local.service` (the search service
as a process), :mod:`~vsearch.local.loadrun` (HTTP load runs against it) and
:mod:`~vsearch.local.cli` (``vsearch services``). Nothing here imports :mod:`vsearch.serving`.
"""
