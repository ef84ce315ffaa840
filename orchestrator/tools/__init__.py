"""Tool-call routing for assistant servers: tool definitions, running a model's tool call, and annotations."""
