"""Entry point: ``tether-agent`` / ``python -m tether.agents.builtin`` (flags: see config.py).

stdout carries ACP's JSON-RPC and nothing else; messages for a person go to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import cast

from acp import Agent, run_agent

from tether.agents.builtin.agent import BuiltinAgent
from tether.agents.builtin.config import AgentConfig, resolve
from tether.errors import AgentConfigError


async def serve(config: AgentConfig) -> None:
    """Run the agent on stdin/stdout until the client closes the pipe."""
    agent = BuiltinAgent(config)
    try:
        # The SDK answers "method not found" for the optional methods the agent leaves out
        # (session/load, modes, ...), so the agent need not spell out the whole Protocol.
        await run_agent(cast(Agent, agent))
    finally:
        await agent.aclose()


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and environment, then serve ACP on stdio."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="tether-agent: %(message)s")
    try:
        config = resolve(sys.argv[1:] if argv is None else argv, os.environ)
    except AgentConfigError as exc:
        print(f"tether-agent: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if config.missing_key:
        # Still start: the client sees the same line as the answer to each prompt.
        print(f"tether-agent: {config.missing_key}", file=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config))


if __name__ == "__main__":
    main()
