"""Waiting for an action that asks another service (it returned a Deferred).

Kept apart from L{certlb.rules.actions} so that loading a configuration
imports nothing of C{twisted.internet}: this module is imported the first
time an action returns a Deferred.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred, TimeoutError
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
    timed_out = cancelled = False

    def cancel(result: Deferred[Any]) -> None:
        nonlocal cancelled
        cancelled = True
        outcome.cancel()

    result: Deferred[Any] = Deferred(cancel)

    def expired(result: Any, timeout: float) -> Any:
        nonlocal timed_out
        timed_out = True
        return result

    if context.reactor is not None:
        outcome.addTimeout(seconds, context.reactor, onTimeoutCancel=expired)

    def answered(answer: Any) -> LocalResponse | None:
        if answer is None or isinstance(answer, LocalResponse):
            if context.trace is not None:
                said = "goes on" if answer is None else f"answers {answer.status}"
                context.trace(f"{rule.label}: {said}")
            return answer
        raise ActionFailed(
            500,
            f"{rule.label}: its Deferred fired with {answer!r}, neither None "
            "nor a LocalResponse",
        )

    def failed(failure: Failure) -> Failure:
        if failure.check(ActionFailed):
            return failure
        if cancelled:  # whatever the action's own failure says of it
            return Failure(CancelledError())
        if timed_out or failure.check(TimeoutError):
            raise ActionFailed(
                504, f"{rule.label}: no answer within {seconds:g}s (cancelled)"
            )
        raise ActionFailed(
            500, f"{rule.label} failed: {failure.getErrorMessage()}", failure
        )

    outcome.addCallbacks(answered, failed).chainDeferred(result)
    return result


def _failed(status: int, why: str) -> Deferred[Any]:
    result: Deferred[Any] = Deferred()
    result.errback(ActionFailed(status, why))
    return result
