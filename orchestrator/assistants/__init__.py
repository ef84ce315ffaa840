"""The Assistants API's objects (assistants, threads, messages) and, later, its run engine. No HTTP in here."""
