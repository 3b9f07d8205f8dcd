"""pytest-forkscope: at a test's deadline, triage its process tree with
forkscope before teardown, end what it started (SIGINT first), fail it."""
__version__ = "0.1.0"
