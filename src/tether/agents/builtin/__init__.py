"""tether's built-in coding agent: an ACP agent on Anthropic and OpenAI-compatible models.

It runs as its own process (``tether-agent``, or ``python -m tether.agents.builtin``),
speaking ACP on stdio, so tether drives it exactly as it drives Claude Code or Codex, and
any other ACP client (Zed, ...) can run it too. All its file access goes through the
client's ``fs/*`` and all its commands through the client's ``terminal/*``, so the host's
folder confinement, sandbox and approvals apply to it like to any agent.

Modules: ``config`` (flags, environment, defaults), ``model`` (the neutral conversation
and stream events), ``providers/`` (one adapter per model API, imported lazily),
``retry`` (which failures to retry, and the line the user reads), ``context`` (trimming
to the context window), ``tools`` (tool schemas, pure helpers), ``toolbox`` (running the
tools over ACP), ``agent`` (the ACP agent and its prompt turn), ``__main__`` (the entry
point).
"""
