"""The online search pipeline: one object used by the service, the evaluation and the CLI.

Import from the modules (``vsearch.search.pipeline``, ``.encoder``, ``.build``); this package
imports nothing heavy itself (training imports :mod:`vsearch.search.images`).
"""
