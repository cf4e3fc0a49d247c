"""A lean HTTP/1.1 client for open-loop load: keep-alive connections opened as needed, one request
at a time on each, the answer read by its Content-Length. It spends a small fraction of the CPU a
full client spends per request, so on a shared 2-core machine the load generator's own delays do
not pass for the server's latency."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class LeanClient:
    def __init__(self, base_url: str) -> None:
        address = urlsplit(base_url)
        assert address.scheme == "http" and address.hostname and address.port
        self._host, self._port = address.hostname, address.port
        self._idle: list[Connection] = []

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        """The answer's status; an OSError or IncompleteReadError when the connection failed.
        A kept-alive connection the server closed while idle (uvicorn after 5 s) is replaced
        and the request sent again, as HTTP clients do when no byte of an answer came back."""
        if self._idle:
            try:
                return await self._send(self._idle.pop(), path, body, headers)
            except asyncio.IncompleteReadError as error:
                if error.partial:
                    raise
            except ConnectionResetError:
                pass
        return await self._send(await self._connect(), path, body, headers)

    async def _send(
        self, connection: Connection, path: str, body: bytes, headers: dict[str, str]
    ) -> int:
        reader, writer = connection
        try:
            head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            writer.write(
                f"POST {path} HTTP/1.1\r\nHost: {self._host}\r\n"
                f"Content-Length: {len(body)}\r\n{head}\r\n".encode()
                + body
            )
            status_line = await reader.readuntil(b"\r\n")
            status = int(status_line.split(b" ", 2)[1])
            length = 0
            while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
        except BaseException:
            writer.close()
            raise
        self._idle.append((reader, writer))
        return status

    async def _connect(self) -> Connection:
        return await asyncio.open_connection(self._host, self._port)

    async def close(self) -> None:
        """Close the idle connections (the server closes them itself after a few idle seconds)."""
        idle, self._idle = self._idle, []
        for _, writer in idle:
            writer.close()
        await asyncio.gather(*(w.wait_closed() for _, w in idle), return_exceptions=True)
