"""The loop between a model and the hosted tools, shared by the Assistants API (and later the Responses API)."""
