"""One exception tree for tether.

::

    TetherError                   everything tether raises on purpose
    ├── UserError                 the user can fix it; the CLI prints the message, no traceback
    │   ├── NotTrusted            Remote Control asked for in an untrusted folder
    │   ├── PermissionsSkipped    --dangerously-skip-permissions with Remote Control on
    │   ├── AgentNotFound         the agent command cannot be started
    │   ├── RelayUnreachable      the relay cannot be reached or refused the session
    │   ├── RelayBindFailed       the relay cannot listen on its host and port
    │   ├── BrokerUnavailable     the relay's broker is unknown or not in this version
    │   ├── InsecureRelay         a plain http:// or ws:// relay that is not on this machine
    │   ├── TlsUnusable           the relay's TLS certificate, key or CA file cannot be used
    │   ├── TunnelFailed          --tunnel: the tool is missing, unknown, stopped, or gave no address in time
    │   ├── RelayConflict         both a relay URL and a tunnel were asked for
    │   ├── AgentConfigError      a flag or variable of the built-in agent has an unusable value
    │   └── NotLoggedIn           this machine has no device registered with that relay
    ├── ProtocolError             a frame or message broke docs/protocol.md
    │   ├── LocalProtocolError    we were about to send something invalid (a bug here)
    │   └── RemoteProtocolError   the other side sent something invalid (drop and count)
    ├── FileRefused               the host will not serve an agent's fs/* request (an ACP error for the agent)
    │   ├── OutsideProject        a file path escapes the project folder
    │   ├── NotARegularFile       a folder, FIFO, device or socket where a file was expected
    │   └── FileTooLarge          a file above the read limit (host/files.py MAX_READ_BYTES)
    ├── Refused                   the relay refuses a connection: a close code and a drop reason
    ├── CredentialRefused         a token or proof failed a check; ``reason`` names which (auth/)
    ├── ToolError                 a built-in agent's tool could not do what the model asked
    └── ProviderError             the built-in agent's model API failed

The docstring of each user-facing class is the advice printed after its message.
``tether.config.ConfigError`` (a bad ``config.toml``) is a UserError too; it lives beside
the config it checks. Refused, ToolError and ProviderError are values passed back to a
peer (a close frame, a tool result, a line for the model's user), never crashes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # types only: this module imports nothing of tether at run time
    from tether.relay.routing import CloseCode, Drop


class TetherError(Exception):
    """Base of every exception tether raises on purpose."""


class UserError(TetherError):
    """Something the user can fix."""

    def advice(self) -> str:
        """The text the CLI prints after the message: the class docstring."""
        return (type(self).__doc__ or "").strip()


class DeviceNotPaired(UserError):
    """`tether devices` lists the paired devices and their ids."""


class NothingToPair(UserError):
    """A pairing question appears when a browser opens the session URL of a `tether rc` without --accept-device."""


class NotTrusted(UserError):
    """Trust the folder first with `tether trust`, then try again."""


class PermissionsSkipped(UserError):
    """Remote Control always asks before edits and commands; drop --dangerously-skip-permissions."""


class AgentNotFound(UserError):
    """Check the --agent value: `demo`, or a command line that starts an ACP agent."""


class RelayUnreachable(UserError):
    """Check --relay (or `relay.url` in the config) and that the relay is running."""


class RelayBindFailed(UserError):
    """Pick another --port (or --host), or stop what already listens there."""


class BrokerUnavailable(UserError):
    """Use --broker memory (one process), or redis://HOST:PORT/DB with a Redis server this machine reaches."""


class TunnelFailed(UserError):
    """Run the tool's command shown above by hand to see what it needs, or go without --tunnel (docs/deploy.md)."""


class RelayConflict(UserError):
    """Use --relay URL (a relay of your own) or --tunnel cloudflared|tailscale (publish the built-in one), not both."""


class InsecureRelay(UserError):
    """Use the relay's https:// address (a relay of your own: `tether relay serve --tls-cert F --tls-key F`, or behind Caddy), or reach this machine's relay through a tunnel (--tunnel cloudflared|tailscale)."""  # noqa: E501


class TlsUnusable(UserError):
    """Check the file names and that each file is PEM: --tls-cert with --tls-key for a relay, --relay-ca for a host."""


class AgentConfigError(UserError):
    """Fix the flag or TETHER_AGENT_* variable named in the message (see `tether-agent --help`)."""


class NotLoggedIn(UserError):
    """Register this machine with the relay first: `tether login <invite URL>` (ask its operator for an invite)."""


class ProtocolError(TetherError):
    """A frame or message broke docs/protocol.md."""


class LocalProtocolError(ProtocolError):
    """We were about to send something the protocol forbids: a bug on this side."""


class RemoteProtocolError(ProtocolError):
    """The other side sent something the protocol forbids: drop it and count it."""


class FileRefused(TetherError):
    """The host will not serve this fs/* request; the message says why (for the agent)."""


class OutsideProject(FileRefused):
    """A file path resolves outside the project folder."""


class NotARegularFile(FileRefused):
    """The path names a folder, FIFO, device or socket, not a regular file."""


class FileTooLarge(FileRefused):
    """The file is larger than the host reads for an agent."""


class Refused(TetherError):
    """The relay refuses a connection: close it with ``code`` and count ``drop``."""

    def __init__(self, code: CloseCode, drop: Drop) -> None:
        super().__init__(code.reason)
        self.code = code
        self.drop = drop


class ToolError(TetherError):
    """A tool could not do what the model asked; the message goes back to the model as the result."""


class ProviderError(TetherError):
    """The model API failed; ``str(error)`` is one readable line for the user."""

    def __init__(self, message: str, *, retryable: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class CredentialRefused(TetherError):
    """A credential failed a check; ``reason`` is one word (auth/tokens.py ``Refusal``), never the token."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
