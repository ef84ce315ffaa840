"""The Responses API's service: stored responses and conversations, and the runs that make responses, on the one
agent loop of orchestrator/agent/ and the same hosted tools as every face. No HTTP in here."""
