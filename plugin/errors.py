"""The one error type of allotment.

Every message names the step, the field, the value, where the value came from and
what is accepted, e.g.::

    step 'train': memory='16gb' from @resources is not a quantity; use an int (MiB)
    or e.g. '16Gi', '16384Mi', '16G'
"""

from __future__ import annotations

__all__ = ["AllotmentError", "AllotmentWarning", "FieldError"]


class AllotmentError(ValueError):
    """Base of every error allotment raises. A ``ValueError``, so callers that already
    catch bad values keep working.

    The structured parts stay available as attributes for tools (``step``, ``field``,
    ``value``, ``source``, ``accepted``); ``str(err)`` is the full sentence, followed by
    ``pointer`` (e.g. the input with a caret line under the offending part) when given.
    """

    def __init__(
        self,
        problem: str,
        *,
        step: str | None = None,
        field: str | None = None,
        value: object = None,
        source: str | None = None,
        accepted: str | None = None,
        has_value: bool | None = None,
        pointer: str | None = None,
    ) -> None:
        self.problem = problem
        self.step = step
        self.field = field
        self.value = value
        self.source = source
        self.accepted = accepted
        self.has_value = field is not None if has_value is None else has_value
        self.pointer = pointer
        super().__init__(self._render())

    def _render(self) -> str:
        head: list[str] = []
        if self.step is not None:
            head.append(f"step {self.step!r}:")
        subject = ""
        if self.field is not None:
            subject = f"{self.field}={self.value!r}" if self.has_value else self.field
        if self.source is not None:
            subject = f"{subject} from {self.source}" if subject else f"from {self.source}"
        if subject:
            head.append(subject)
        text = " ".join(head + [self.problem])
        if self.accepted:
            text = f"{text}; {self.accepted}"
        if self.pointer:
            text = f"{text}\n{self.pointer}"
        return text

    def with_context(self, *, step: str | None = None, source: str | None = None, pointer: str | None = None) -> AllotmentError:
        """A copy of this error that also names ``step`` and ``source`` and shows ``pointer`` (each kept where already set)."""
        return AllotmentError(
            self.problem,
            step=self.step if self.step is not None else step,
            field=self.field,
            value=self.value,
            source=self.source if self.source is not None else source,
            accepted=self.accepted,
            has_value=self.has_value,
            pointer=self.pointer if self.pointer is not None else pointer,
        )


class FieldError(AllotmentError):
    """A value one field cannot take, raised by the pure validators before the step and the
    source are known; :meth:`AllotmentError.with_context` adds them."""


class AllotmentWarning(UserWarning):
    """A spec value that a backend cannot apply and that allotment therefore leaves out (for
    example ``disk`` on AWS Batch EC2, whose disk the launch template sizes). Compilers also
    list the text among their notes, so ``explain`` and ``render`` show it."""
