"""The Responses face: /v1/responses and /v1/conversations in OpenAI's current wire, over orchestrator/responses."""
