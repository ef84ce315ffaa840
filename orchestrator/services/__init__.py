"""Services: what owns the stored state behind every face (files, vector stores, keys and projects, sandbox
bindings, container files, exports) and the container (`container.Services`) that holds them all, built once."""
