"""Length-prefixed JSON frames between the pool and its workers (stdlib only)."""

from __future__ import annotations

import json
import os
import struct

HEADER = struct.Struct("!I")
# A frame holds one program source or one truncated result; anything bigger is a broken peer.
MAX_FRAME_BYTES = 16 * 1024 * 1024


def encode_frame(message: dict) -> bytes:
    """Serialise one message as a 4-byte big-endian length followed by ASCII JSON."""
    data = json.dumps(message, ensure_ascii=True).encode("ascii")
    return HEADER.pack(len(data)) + data


def write_frame(fd: int, message: dict) -> None:
    """Write one whole frame to a blocking file descriptor."""
    view = memoryview(encode_frame(message))
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks, remaining = [], size
    while remaining:
        chunk = os.read(fd, remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> dict | None:
    """Read one frame from a blocking file descriptor; ``None`` at end of stream."""
    header = _read_exact(fd, HEADER.size)
    if header is None:
        return None
    (size,) = HEADER.unpack(header)
    if size > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {size} bytes exceeds {MAX_FRAME_BYTES}")
    data = _read_exact(fd, size)
    if data is None:
        return None
    return json.loads(data)


class FrameDecoder:
    """Splits a byte stream that arrives in arbitrary chunks into decoded messages."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[dict]:
        """Add bytes; return every message completed by them. Raises ValueError on garbage."""
        self._buffer += data
        messages = []
        while len(self._buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(self._buffer)
            if size > MAX_FRAME_BYTES:
                raise ValueError(f"frame of {size} bytes exceeds {MAX_FRAME_BYTES}")
            if len(self._buffer) < HEADER.size + size:
                break
            payload = bytes(self._buffer[HEADER.size : HEADER.size + size])
            del self._buffer[: HEADER.size + size]
            message = json.loads(payload)
            if not isinstance(message, dict):
                raise ValueError("frame is not a JSON object")
            messages.append(message)
        return messages
