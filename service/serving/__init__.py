"""The transport-free serving core: validation, the served models, batching, the predictor.

Every wire edge (service.rpc for gRPC, service.http for HTTP/REST) converts its messages to
arrays, awaits `ServingCore` and converts the answer back; nothing here imports grpc.
"""
