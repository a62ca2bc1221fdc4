"""Reading a request body under a size limit, refusing it before it is all in memory."""

from __future__ import annotations

from starlette.requests import Request

from service.http.errors import BodyTooLarge, UnsupportedMediaType

__all__ = ["read_body"]


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body of `request`, at most `limit` bytes.

    Raises BodyTooLarge as soon as the declared Content-Length or the bytes received so far pass
    the limit (a 50 MB upload is refused after its first chunk over, never buffered whole), and
    UnsupportedMediaType for a compressed body (Content-Encoding other than identity).
    """
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} is not supported; send the body uncompressed"
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdecimal() and int(declared) > limit:
        raise BodyTooLarge(f"request body of {int(declared)} bytes is over the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
