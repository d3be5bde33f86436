"""Failure is explicit: a node down, killed mid-query, slow, refusing or answering garbage.

The broken nodes are real: an agent process killed with SIGKILL while it runs a slow
query, a port nobody listens on, and a small HTTP server on loopback
(:mod:`tests.federation.junk`) answering junk, unsigned Arrow, Arrow of the wrong columns,
answers signed under another secret, refusals and error pages. Each fails the query with
``federation.node-unavailable`` naming the node; with ``partial=True`` the other nodes'
answer comes back with ``attrs["sde"]["missing_nodes"]``.
"""

from __future__ import annotations

import socket

import pytest

from sde.federation.client import NodeClient, NodeFailure
from tests.federation.junk import ENGINE_TEXT, MODES, junk_node

SECRET = b"s" * 32


def _closed_port() -> str:
    """A loopback URL nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


REASONS = {
    "junk": "without a valid signature",
    "unsigned-arrow": "without a valid signature",
    "other-secret": "without a valid signature",
    "signed-junk": "not an Arrow table",
    "refuse": "refused the query (nodes.not-allowed",
    "crash": "failed (HTTP 500",
    "slow": "did not answer within 1 s",
}


@pytest.mark.parametrize("mode", [m for m in MODES if m != "wrong-columns"])
def test_client_names_what_a_broken_node_did(mode: str) -> None:
    with junk_node(SECRET, mode) as node:
        client = NodeClient({"umbh": node.url, "down": _closed_port()}, SECRET)
        try:
            answers, failures = client.fan_out(
                ("umbh", "down"),
                lambda n: client.frame(n, "v1/query", b"{}", timeout_s=1.0),
                timeout_s=1.0,
            )
        finally:
            client.close()
    assert answers == {}
    assert set(failures) == {"umbh", "down"}
    assert REASONS[mode] in failures["umbh"].reason
    assert "could not be reached" in failures["down"].reason
    assert ENGINE_TEXT not in str(failures["umbh"])
    assert isinstance(failures["umbh"], NodeFailure)
    assert failures["umbh"].rule == ("nodes.not-allowed" if mode == "refuse" else None)
