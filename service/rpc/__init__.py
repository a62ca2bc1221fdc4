"""The gRPC edge: the server, per-call handling and one adapter per protocol (digits.v1, V2)."""
