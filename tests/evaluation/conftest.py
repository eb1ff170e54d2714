"""Fixtures for the evaluation tests: local copies of each benchmark in its own layout, and a loopback chat server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from evaluation_helpers import LAYOUTS, LoopbackChatServer


@pytest.fixture(scope="session")
def benchmark_copies(tmp_path_factory) -> dict[str, Path]:
    """A local copy of every benchmark, each in its own layout, built once per session."""
    root = tmp_path_factory.mktemp("benchmarks")
    return {name: write(root / name) for name, write in LAYOUTS.items()}


@pytest.fixture
def chat_server() -> Iterator[Callable[[Callable[[str], str | int | tuple[float, str]]], LoopbackChatServer]]:
    """Starts loopback chat servers for a test and always stops them afterwards."""
    servers: list[LoopbackChatServer] = []

    def start(reply):
        server = LoopbackChatServer(reply).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)
