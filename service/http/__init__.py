"""The HTTP edge: the Open Inference Protocol's REST binding and the drawing page, as one ASGI app
(Starlette under uvicorn) on the gRPC server's event loop and ServingCore."""
