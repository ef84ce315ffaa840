"""Toolshed orchestrator: the HTTP service and the sandbox engine behind OpenAI's hosted tools."""

__version__ = "0.1.0"
