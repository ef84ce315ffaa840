"""The HTTP layer: thin FastAPI routers that parse, call an engine, and shape OpenAI objects."""
