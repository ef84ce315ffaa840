"""The wires other assistant servers already speak (MCP, ...): thin adapters over the same services as the OpenAI
face."""
