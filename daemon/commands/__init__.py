"""The `traum` subcommands, one module per area. Each module's ``register(sub, common)`` adds
its parsers and binds each to a handler with ``set_defaults(handler=...)``; a handler takes the
parsed arguments and returns an exit code. Errors propagate as `TraumError`s to `cli.main`,
the single place that maps them to messages and codes.

A new command is a function in the module of its area (or a new module listed in `MODULES`).
"""

from __future__ import annotations

from daemon.commands import (
    care,
    corrections,
    kits,
    library,
    maintenance,
    production,
    service,
    worker,
)

#: Registration order is the order `traum --help` lists the commands in.
MODULES = (service, worker, library, corrections, kits, production, maintenance, care)
