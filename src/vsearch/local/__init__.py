"""Local operations: everything that starts, watches and stops processes on this machine.

Modules: :mod:`~vsearch.local.processes` (spawn, wait until ready, state file, stop),
:mod:`~vsearch.local.env` (telemetry switches, client environment, variable names shared with
the service), :mod:`~vsearch.local.servers` (MLflow + Prefect), :mod:`~vsearch.local.deployment`
(the deployments' process and the project lock), :mod:`~vsearch.local.service` (the search service
as a process), :mod:`~vsearch.local.loadrun` (HTTP load runs against it) and
:mod:`~vsearch.local.cli` (``vsearch services``), :mod:`~vsearch.local.timing` (per-stage
timing table of the demo and the nightly). Nothing here imports :mod:`vsearch.serving`.
"""
