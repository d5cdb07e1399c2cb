"""REST API views, one module per domain; each view checks access, calls a service, serializes."""
