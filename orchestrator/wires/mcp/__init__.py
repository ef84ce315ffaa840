"""The MCP face: Streamable HTTP at /mcp, the hosted tools as MCP tools."""
