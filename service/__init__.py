"""The gRPC prediction service: import its modules directly (service.client, service.server, ...).

Nothing is re-exported here on purpose: `import service.client` must not pull in the server or
the Open Inference Protocol stubs, which clash with tritonclient's in one process.
"""
