"""The demo's port check: a listening port is in use; one left in TIME_WAIT by a closed connection is not."""

from __future__ import annotations

import socket

from llmlens.demo.settings import LOOPBACK, port_is_free


def _port_left_in_time_wait() -> int:
    """A port whose server closed a connection first (so its side sits in TIME_WAIT) and stopped listening,
    as a demo run stopped a moment ago leaves it."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((LOOPBACK, 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection((LOOPBACK, port))
    accepted, _ = listener.accept()
    accepted.sendall(b"bye")
    accepted.close()  # the side that closes first keeps TIME_WAIT, here on the server's port
    client.recv(16)
    client.close()
    listener.close()
    return port


def _plain_bind_fails(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return True
    return False


def test_a_port_in_time_wait_counts_as_free() -> None:
    port = _port_left_in_time_wait()
    assert _plain_bind_fails(port), "the connection left no TIME_WAIT behind; the test proves nothing"
    assert port_is_free(LOOPBACK, port)


def test_a_listening_port_is_in_use() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen()
        assert not port_is_free(LOOPBACK, listener.getsockname()[1])
