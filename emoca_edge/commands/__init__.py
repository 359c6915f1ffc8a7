"""Sub-commands of the ``emoca-edge`` CLI.

Each module here exposes ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
Modules must not import torch at import time: the runtime CLI has to start without it.
"""
