"""Lifeline: a survivability gateway that keeps a branch office calling when the cloud PBX is gone."""

from gateway.extras import without

__version__ = "0.1.0"

# structlog imports rich, when installed (the CLI's progress bars), for its tracebacks on a terminal:
# ~3 MiB resident in the daemon and the trunk agent, which log plain lines or JSON. Imported first here,
# so that whichever module imports structlog first, it is imported without; the CLI imports rich itself.
with without("rich"):
    import structlog  # noqa: F401
