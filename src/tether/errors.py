"""One exception tree for tether.

::

    TetherError                   everything tether raises on purpose
    ├── UserError                 the user can fix it; the CLI prints the message, no traceback
    │   ├── NotTrusted            Remote Control asked for in an untrusted folder
    │   ├── PermissionsSkipped    --dangerously-skip-permissions with Remote Control on
    │   ├── AgentNotFound         the agent command cannot be started
    │   └── RelayUnreachable      the relay cannot be reached or refused the session
    ├── ProtocolError             a frame or message broke docs/protocol.md
    │   ├── LocalProtocolError    we were about to send something invalid (a bug here)
    │   └── RemoteProtocolError   the other side sent something invalid (drop and count)
    └── OutsideProject            a file path escapes the project folder

The docstring of each user-facing class is the advice printed after its message.
"""

from __future__ import annotations


class TetherError(Exception):
    """Base of every exception tether raises on purpose."""


class UserError(TetherError):
    """Something the user can fix."""

    def advice(self) -> str:
        """The text the CLI prints after the message: the class docstring."""
        return (type(self).__doc__ or "").strip()


class NotTrusted(UserError):
    """Trust the folder first with `tether trust`, then try again."""


class PermissionsSkipped(UserError):
    """Remote Control always asks before edits and commands; drop --dangerously-skip-permissions."""


class AgentNotFound(UserError):
    """Check the --agent value: `demo`, or a command line that starts an ACP agent."""


class RelayUnreachable(UserError):
    """Check --relay (or `relay.url` in the config) and that the relay is running."""


class ProtocolError(TetherError):
    """A frame or message broke docs/protocol.md."""


class LocalProtocolError(ProtocolError):
    """We were about to send something the protocol forbids: a bug on this side."""


class RemoteProtocolError(ProtocolError):
    """The other side sent something the protocol forbids: drop it and count it."""


class OutsideProject(TetherError):
    """A file path resolves outside the project folder."""
