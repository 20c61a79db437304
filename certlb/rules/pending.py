"""Waiting for an action that asks another service (it returned a Deferred).

Kept apart from L{certlb.rules.actions} so that loading a configuration
imports nothing of C{twisted.internet}: this module is imported the first
time an action returns a Deferred.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure

from certlb.rules.actions import DEFAULT_ACTION_TIMEOUT, LocalResponse, Rule
from certlb.rules.interfaces import IRequestContext

__all__ = ["ActionFailed", "wait_for"]


class ActionFailed(Exception):
    """An action's Deferred failed, or did not fire in time: the request is
    answered C{status}, never let through.

    @ivar why: what happened, for the log, naming the rule.
    @ivar failure: the action's own failure, for its traceback; None for a
        timeout.
    """

    def __init__(self, status: int, why: str, failure: Failure | None = None) -> None:
        super().__init__(why)
        self.status = status
        self.why = why
        self.failure = failure


def wait_for(outcome: Any, rule: Rule, context: IRequestContext) -> Deferred[Any]:
    """The answer of C{rule}'s action, which returned C{outcome}: it must be
    a Deferred, bounded by the action's C{timeout}.

    @return: a Deferred firing with a L{LocalResponse} or None, or failing
        with L{ActionFailed}.  Cancelling it cancels the action's.
    """
    if not isinstance(outcome, Deferred):
        return _failed(
            500,
            f"{rule.label} returned {outcome!r}, neither None, a LocalResponse "
            "nor a Deferred",
        )
    timeout = rule.action.timeout
    seconds = DEFAULT_ACTION_TIMEOUT if timeout is None else timeout
    timer: Any = None
    cancelled = False

    def stop_timer() -> None:
        nonlocal timer
        if timer is not None and timer.active():
            timer.cancel()
        timer = None

    def cancel(result: Deferred[Any]) -> None:  # the client went away
        nonlocal cancelled
        cancelled = True
        stop_timer()
        outcome.cancel()

    result: Deferred[Any] = Deferred(cancel)

    def expire() -> None:
        nonlocal timer
        timer = None
        result.errback(
            ActionFailed(
                504, f"{rule.label}: no answer within {seconds:g}s (cancelled)"
            )
        )
        outcome.cancel()  # and whatever the action then says is ignored

    if context.reactor is not None:
        timer = context.reactor.callLater(seconds, expire)

    def settle(value: Any) -> None:
        """The action said: pass it on, unless certlb has given up on it."""
        stop_timer()
        if result.called:
            return  # timed out: its answer, even "go on", comes too late
        if cancelled:
            result.errback(CancelledError())
        elif isinstance(value, Failure):
            result.errback(_failure(value, rule))
        elif value is None or isinstance(value, LocalResponse):
            if context.trace is not None:
                said = "goes on" if value is None else f"answers {value.status}"
                context.trace(f"{rule.label}: {said}")
            result.callback(value)
        else:
            result.errback(
                ActionFailed(
                    500,
                    f"{rule.label}: its Deferred fired with {value!r}, neither "
                    "None nor a LocalResponse",
                )
            )

    outcome.addBoth(settle)
    return result


def _failure(failure: Failure, rule: Rule) -> Failure:
    if failure.check(ActionFailed):
        return failure
    return Failure(
        ActionFailed(500, f"{rule.label} failed: {failure.getErrorMessage()}", failure)
    )


def _failed(status: int, why: str) -> Deferred[Any]:
    result: Deferred[Any] = Deferred()
    result.errback(ActionFailed(status, why))
    return result
