"""The wires other servers already speak: MCP, Jupyter and LibreChat, one package each, each a thin adapter over
the same services as the OpenAI face and none importing another."""
