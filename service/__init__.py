"""The model server, in layers: serving (transport-free core), rpc (the gRPC edge), http (the
HTTP/REST edge and the drawing page, on the same event loop), observability (metrics, logs) and
client (the SDK); settings.py holds every runtime setting.

Nothing is re-exported here on purpose: `import service.client` must not pull in the server or
the Open Inference Protocol stubs, which clash with tritonclient's in one process.
"""
