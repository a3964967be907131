"""The session core: a session's rules as pure state (events in, effects out).

No module here imports asyncio, a socket, a subprocess or a clock; ``session.py`` holds
the calling contract, ``phases.py`` the lifecycle table, ``policy.py`` the permission
rules, ``approvals.py`` the approval lifecycle, ``transcript.py`` what screens mirror.
"""
