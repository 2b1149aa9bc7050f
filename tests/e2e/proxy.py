"""A TCP proxy for network-fault tests: forwards 127.0.0.1:listen_port to upstream_port,
and on request drops every connection or stalls (forwards nothing) for a while.

One selector thread moves the bytes, so a stall stops everything at once: bytes in
flight stay in the kernel's buffers and new connections wait in the accept backlog.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time

HOST = "127.0.0.1"


class TcpProxy:
    def __init__(self, listen_port: int, upstream_port: int) -> None:
        self.listen_port, self.upstream_port = listen_port, upstream_port
        self.connections = 0
        self.drops = 0
        self._listener = socket.create_server((HOST, listen_port), reuse_port=False)
        self._listener.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._peers: dict[socket.socket, socket.socket] = {}
        self._stalled_until = 0.0
        self._drop = threading.Event()
        self._dropped = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)

    def __enter__(self) -> TcpProxy:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for sock in list(self._peers):
            self._close(sock)
        self._selector.close()
        self._listener.close()

    def drop_all(self) -> None:
        """Close every open connection (both sides); new connections are accepted again."""
        self._dropped.clear()
        self._drop.set()
        self._dropped.wait(timeout=10)

    def stall(self, seconds: float) -> None:
        """Forward nothing and accept nothing for ``seconds`` (returns at once)."""
        self._stalled_until = time.monotonic() + seconds

    @property
    def stalled(self) -> bool:
        return time.monotonic() < self._stalled_until

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._drop.is_set():
                for sock in list(self._peers):
                    self._close(sock)
                self.drops += 1
                self._drop.clear()
                self._dropped.set()
            if self.stalled:
                time.sleep(0.05)
                continue
            for key, _ in self._selector.select(timeout=0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._listener:
                    self._accept()
                elif sock in self._peers:
                    self._forward(sock)

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        try:
            upstream = socket.create_connection((HOST, self.upstream_port), timeout=5)
        except OSError:
            client.close()
            return
        self.connections += 1
        for sock in (client, upstream):
            sock.setblocking(True)
            sock.settimeout(30)
        self._peers[client], self._peers[upstream] = upstream, client
        self._selector.register(client, selectors.EVENT_READ)
        self._selector.register(upstream, selectors.EVENT_READ)

    def _forward(self, sock: socket.socket) -> None:
        peer = self._peers[sock]
        try:
            data = sock.recv(1 << 20)
            if data:
                peer.sendall(data)
                return
        except OSError:
            pass
        self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        peer = self._peers.pop(sock, None)
        for s in (sock, peer):
            if s is None:
                continue
            self._peers.pop(s, None)
            try:
                self._selector.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()
