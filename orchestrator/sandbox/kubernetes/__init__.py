"""Sandboxes as Kubernetes pods through agent-sandbox (kubernetes-sigs/agent-sandbox): manifests.py builds every
object the backend writes, as plain dicts; backend.py drives a cluster with them (the only importer of
`kubernetes`)."""
