"""Approvals in the session core: open, decide, expire, and the grants they give.

Each approval is held in one place (ApprovalBook: its deadline, who decided it, its
outcome). An allowed approval becomes a Grant (policy.py) that covers the writes and
commands the agent then sends through the host; anything not covered opens an approval of
the host's own. Settling an approval answers the request waiting for it (Answer for the
agent's permission request, Permit for a write or command).
"""

from __future__ import annotations

from typing import Any

from tether.host import grants
from tether.host.core import effects as fx
from tether.host.core import events as ev
from tether.host.core import policy
from tether.host.core.approvals import ALLOW_KINDS, REJECT_KINDS, Approval, Option
from tether.host.core.state import CoreState
from tether.host.core.transcript import tool_entry_id
from tether.host.grants import Scope
from tether.host.permissions import Request, Tier, command_request, tool_call_request
from tether.protocol import signing

BY_GRANT = "always allow #"  # decided_by of an approval an "always allow" of this session decided


class Approving(CoreState):
    """The approval part of SessionCore."""

    def _permission(self, event: ev.PermissionAsked) -> None:
        tool_call = event.tool_call
        shown = self.transcript.tool_call(tool_call)
        self._emit([shown])
        entry = shown.entry
        unconfined = self.controls.unconfined_always()
        options, withheld = policy.offered(list(event.options), self.controls.remote, unconfined)
        if withheld and not self._withheld_noticed:
            self._withheld_noticed = True
            self._notice(f"The agent's own 'Always allow' is not offered under Remote Control: {unconfined}.")
        paths = policy.tool_call_paths(tool_call)
        outside = policy.outside_paths(paths, lambda path: self.resolve(path) is not None)
        resolved = tuple(r for r in (self.resolve(p) for p in paths) if r is not None)
        kind = tool_call.kind or entry.get("kind", "other")
        asked = tool_call_request(kind, (*resolved, *outside), tool_call.raw_input)
        options, scopes = self._scoped(options, asked)
        approval = self.approvals.open(
            tool_call_id=tool_entry_id(tool_call.tool_call_id),
            title=self._marked(policy.flag_outside(tool_call.title or entry.get("title", "tool call"), outside), asked),
            kind=kind,
            options=options,
            deadline=policy.deadline(self._now, self.approval_timeout),
            timeout=self.approval_timeout,
            request=event.request,
            paths=resolved,
            **self._risk(asked),
        )
        self._opened_approval(approval, asked, scopes)

    def _write(self, event: ev.WriteAsked) -> None:
        if self._ruled_out(event.request, Request("edit", (event.path,))):
            return
        index = policy.covering(self.grants, event.path)
        if index is not None:
            self._use_grant(index)
            self._out.append(fx.Permit(event.request, True))
            return
        self._host_approval(event.request, policy.write_title(event.shown), "edit", (event.path,),
                            Request("edit", (event.path,)))  # fmt: skip

    def _command(self, event: ev.CommandAsked) -> None:
        if self._ruled_out(event.request, command_request(event.argv, dict(event.env))):
            return
        index = policy.covering(self.grants, None) if not event.env else None  # added variables always ask
        if index is not None:
            self._use_grant(index)
            self._out.append(fx.Permit(event.request, True))
            return
        title = policy.command_title(list(event.argv), event.cwd, dict(event.env))
        self._host_approval(event.request, title, "execute", (), command_request(event.argv, dict(event.env)))

    def _marked(self, title: str, asked: Request | None) -> str:
        """A risky request (network, installs, deletes...: host/permissions.py) says so in its title, everywhere."""
        if asked is None or self.permission_policy is None:
            return title
        decision = self.permission_policy.decide(asked)
        if decision.tier is not Tier.RISKY or decision.why.startswith("outside the project"):  # flagged already
            return title
        return f"{title} — RISKY: {decision.why}"

    def _ruled_out(self, request: int, asked: Request) -> bool:
        """A deny of the user's rules binds every write and command through the host, approved or not."""
        decision = self.permission_policy.decide(asked) if self.permission_policy is not None else None
        if decision is None or decision.action != "deny":
            return False
        self._notice(f"Refused by tether: {decision.why}.")
        self._out.append(fx.Permit(request, False, f"refused by {decision.why}"))
        return True

    def _use_grant(self, index: int) -> None:
        self.transcript.covered += 1  # a side effect an earlier approval allowed (the guard, modes.py)
        if self.grants[index].used_up():
            del self.grants[index]

    def _host_approval(
        self, request: int, title: str, kind: str, paths: tuple[str, ...], asked: Request | None = None
    ) -> None:
        """A side effect no granted approval covers: the host asks on its own (rule 4)."""
        options, scopes = self._scoped(list(policy.HOST_OPTIONS), asked)
        approval = self.approvals.open(
            tool_call_id=None,
            title=self._marked(title, asked),
            kind=kind,
            options=options,
            deadline=policy.deadline(self._now, self.approval_timeout),
            timeout=self.approval_timeout,
            request=request,
            source="host",
            paths=paths,
            **self._risk(asked),
        )
        self._opened_approval(approval, asked, scopes)

    def _scoped(self, options: list[Option], asked: Request | None) -> tuple[list[Option], dict[str, Scope]]:
        """The options with tether's scoped "always allow" in place of the agent's own (policy.scoped_options)."""
        if self.permission_policy is None or asked is None:
            return options, {}
        scopes = {grants.option_id(i): scope for i, scope in enumerate(grants.derive(self.permission_policy, asked))}
        shown = [(oid, scope.text(self.root)) for oid, scope in scopes.items()]
        return policy.scoped_options(options, shown, policed=True), scopes

    def _risk(self, asked: Request | None) -> dict[str, Any]:
        """The tier an approval shows, and for a risky one its cooldown (policy.too_soon)."""
        if self.permission_policy is None or asked is None:
            return {"opened": self._now}
        tier = self.permission_policy.decide(asked).tier
        name = {Tier.READ: "read", Tier.NORMAL: "normal"}.get(tier, "risky")
        return {"opened": self._now, "tier": name, "cooldown": policy.RISKY_COOLDOWN if name == "risky" else None}

    def _opened_approval(self, approval: Approval, asked: Request | None = None,
                         scopes: dict[str, Scope] | None = None) -> None:  # fmt: skip
        if scopes:
            self._offered_scopes[approval.id] = scopes
        self._emit(self.transcript.put(approval.to_entry()))
        flagged = policy.auto_allow(approval.options, self.controls.remote, self.skip_permissions)
        if flagged is not None:
            self._decide(approval.id, flagged.option_id, by="flag")
        elif asked is not None and self.permission_policy is not None:
            # The user's rules (host/permissions.py): what they allow or deny is decided "by rule".
            decision = self.permission_policy.decide(asked)
            kinds = ("allow_once",) if decision.action == "allow" else REJECT_KINDS
            option = approval.option_of_kind(*kinds) if decision.action != "ask" else None
            if option is not None:
                self._decide(approval.id, option.option_id, by="rule")
                return
            # An "always allow" of this session covers it (host/grants.py): decided "by always allow #N".
            grant = grants.covering(self.permission_policy, self.allowed.values(), asked)
            once = approval.option_of_kind("allow_once")
            if grant is not None and once is not None:
                self._decide(approval.id, once.option_id, by=f"{BY_GRANT}{grant.number}")

    def _too_soon(self, approval_id: str, option_id: str) -> tuple[str, float | None] | None:
        """Why a device's approval comes too fast (policy.too_soon: the cooldown for risky ones) and in how many
        seconds the same answer would count (policy.cooldown_left); None if it is not too soon."""
        approval = self.approvals.get(approval_id)
        option = approval.option(option_id) if approval is not None else None
        if approval is None or option is None or option.kind not in ALLOW_KINDS:
            return None
        why = policy.too_soon(approval.tier, approval.opened, self._last_risky, self._now)
        return None if why is None else (why, policy.cooldown_left(approval.tier, approval.opened, self._last_risky,
                                                                   self._now))  # fmt: skip

    # -- "always allow" of this session (host/grants.py) ----------------------------------

    def _allowed_changed(self) -> None:
        listed = [g.entry(self.root) for g in self.allowed.values()]
        self._emit(self.transcript.put({"id": "allowed", "type": "allowed", "grants": listed}))

    def _grant(self, scope: Scope, by: str) -> None:
        number = self._grant_numbers
        self._grant_numbers += 1
        grant = grants.Grant(number, scope, by, self._now)
        self.allowed[number] = grant
        self._allowed_changed()
        self._notice(f"Always allowed for this session (#{number}): {scope.text(self.root)}. "
                     f"/allowed lists them; /allowed revoke {number} ends it.")  # fmt: skip
        self._out.append(fx.Audit({"grant": number, "title": f"always allow {scope.text(self.root)}",
                                   "scope": scope.key(), "state": "granted", "by": by}))  # fmt: skip

    def _revoke(self, number: int, by: str) -> None:
        grant = self.allowed.pop(number, None)
        if grant is None:
            self._emit(self.transcript.message("system", f"There is no always-allow #{number} to revoke."), to=by)
            return
        self._allowed_changed()
        self._notice(f"Always-allow #{number} revoked ({grant.scope.text(self.root)}): it asks again.")
        self._out.append(fx.Audit({"grant": number, "title": f"always allow {grant.scope.text(self.root)}",
                                   "scope": grant.scope.key(), "state": "revoked", "by": by}))  # fmt: skip

    def _decide(self, approval_id: str, option_id: str, by: str) -> None:
        self._settle(self.approvals.decide(approval_id, option_id, by))

    def _settle(self, approval: Approval | None) -> None:
        """Show the outcome of an approval and answer the request that waits for it."""
        if approval is None:
            return
        entry = approval.to_entry()
        self._emit(self.transcript.put(entry))
        tool_call = self.transcript.entries.get(approval.tool_call_id or "")
        self._out.append(fx.Audit({
            "approval": approval.id, "title": approval.title, "kind": approval.kind, "state": entry["state"],
            "outcome": approval.outcome, "by": approval.decided_by or str(approval.state),
            "shown_sha256": signing.approval_digest(entry, tool_call).hex(),
        }))  # fmt: skip
        granted = approval.granted()
        offered = self._offered_scopes.pop(approval.id, {})
        scope = offered.get(approval.outcome or "") if granted else None
        by = approval.decided_by or ""
        by_device = by not in ("rule", "flag", ev.TERMINAL) and not by.startswith(BY_GRANT)
        if granted and approval.tier == "risky" and by_device:
            self._last_risky = self._now  # a device's approval (the viewer keeps the same pace on its side)
        answer = approval.outcome
        if scope is not None:  # tether's scoped "always": this request is allowed once, later ones by the grant
            self._grant(scope, approval.decided_by or "?")
            granted = "allow_once"
            once = approval.option_of_kind("allow_once")
            answer = once.option_id if once is not None else answer
        if approval.source == "host":
            reason = "" if granted else f"the person did not allow it ({approval.state})"
            self._out.append(fx.Permit(approval.request, granted is not None, reason))
            return
        # Allowed by an "always allow" grant: the write or command that follows must match a grant itself
        # (an agent could ask about `git status` and then send `rm -rf ~` to terminal/create).
        if granted is not None and not (approval.decided_by or "").startswith(BY_GRANT):
            self.grants.append(policy.Grant(frozenset(approval.paths), approval.kind, granted == "allow_always"))
        self._out.append(fx.Answer(approval.request, answer))

    def _settle_all(self) -> None:
        for approval in self.approvals.pending():
            self._settle(self.approvals.cancel(approval.id))

    def _tick(self, event: ev.Tick) -> None:
        expired = self.approvals.expire_due(self._now)
        for approval in expired:
            self._settle(approval)
        if expired:
            self._notice("An approval timed out and was denied.")
