"""The one error type of allotment.

Every message names the step, the field, the value, where the value came from and
what is accepted, e.g.::

    step 'train': memory='16gb' from @resources is not a quantity; use an int (MiB)
    or e.g. '16Gi', '16384Mi', '16G'

Input is hostile (docs/design.md §7.2): a message is built from whatever a user or a run sent,
so building it never raises and never grows with the input. Each part is clipped (a value to
:data:`MAX_SHOWN` characters, an int too long to print to its number of digits, an object whose
``repr`` raises to its type), and a message is at most :data:`MAX_MESSAGE` characters.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "DEBUG_ENV",
    "MAX_MESSAGE",
    "MAX_SHOWN",
    "AllotmentError",
    "AllotmentWarning",
    "FieldError",
    "clip",
    "debug_cause",
    "debugging",
    "show_whole_chain",
    "shown",
]

MAX_SHOWN: Final = 80
"""At most this many characters of a value's ``repr`` appear in a message."""
_MAX_NAME: Final = 120  # a step or field name
_MAX_SOURCE: Final = 240
_MAX_PROBLEM: Final = 1000  # may wrap another message (a file's import error)
_MAX_ACCEPTED: Final = 500
_MAX_POINTER_LINE: Final = 160
MAX_MESSAGE: Final = 2000
"""No message is longer than this."""
_HUGE_INT_BITS: Final = 256  # an int longer than this is shown by its size (str() raises past 4300 digits)


def clip(text: str, limit: int) -> str:
    """``text``, or its first ``limit`` characters and how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def shown(value: object, limit: int = MAX_SHOWN) -> str:
    """``repr(value)`` for a message: clipped to ``limit`` characters, and never raising (an int
    too long for ``str`` is described by its size, an object whose ``repr`` fails by its type)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _HUGE_INT_BITS:
        digits = int(value.bit_length() * 0.30103) + 1  # log10(2): within one of the true count
        return f"<{'a negative' if value < 0 else 'an'} int of about {digits} digits>"
    if type(value) is str and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} characters)"
    try:
        text = repr(value)
    except Exception:  # a hostile or broken __repr__, an int nested too deep to print
        return f"<{clip(type(value).__name__, _MAX_NAME)} object>"
    if not isinstance(text, str):  # pragma: no cover - repr() itself refuses a non-str __repr__
        return f"<{type(value).__name__} object>"
    return clip(text, limit)


def _printable(text: str) -> str:
    """``text`` with each control character as ``?`` (same length, so carets stay aligned)."""
    return text if text.isprintable() else "".join(c if c.isprintable() else "?" for c in text)


def _clip_pointer(pointer: str) -> str:
    """A caret pointer (the input, and a line of ``^`` under the offending part) cut to a window
    around the carets when a line is too long to show; control characters shown as ``?``."""
    lines = pointer.split("\n")
    if len(lines) <= 2 and all(len(line) <= _MAX_POINTER_LINE for line in lines):
        return "\n".join(_printable(line) for line in lines)
    if len(lines) == 2 and lines[1].strip(" ") and set(lines[1].strip(" ")) == {"^"}:
        text, marks = lines
        indent = min(len(text) - len(text.lstrip(" ")), len(marks) - len(marks.lstrip(" ")), 8)
        text, marks = text[indent:], marks[indent:]
        start = len(marks) - len(marks.lstrip(" "))
        end = min(len(marks), start + 60)
        low = max(0, start - 40)
        high = min(len(text), end + 40)
        before = "..." if low > 0 else ""
        after = "..." if high < len(text) else ""
        window = f"{before}{_printable(text[low:high])}{after}"
        carets = " " * (len(before) + start - low) + "^" * max(1, min(end, high) - start)
        return f"{' ' * indent}{window}\n{' ' * indent}{carets}"
    return "\n".join(_printable(clip(line, _MAX_POINTER_LINE)) for line in lines[:2])


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
            head.append(f"step {shown(self.step, _MAX_NAME)}:")
        subject = ""
        if self.field is not None:
            name = clip(str(self.field), _MAX_NAME)
            subject = f"{name}={shown(self.value)}" if self.has_value else name
        if self.source is not None:
            source = clip(str(self.source), _MAX_SOURCE)
            subject = f"{subject} from {source}" if subject else f"from {source}"
        if subject:
            head.append(subject)
        text = " ".join(head + [clip(str(self.problem), _MAX_PROBLEM)])
        if self.accepted:
            text = f"{text}; {clip(str(self.accepted), _MAX_ACCEPTED)}"
        if self.pointer:
            text = f"{text}\n{_clip_pointer(str(self.pointer))}"
        return clip(text, MAX_MESSAGE - 32)  # room for the length clip() adds

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


DEBUG_ENV: Final = "ALLOTMENT_DEBUG"
"""The switch that shows every error with its whole chain of causes (for bug reports)."""


def debugging() -> bool:
    """True when ``ALLOTMENT_DEBUG`` asks for the whole chain of every error (read when called, not at import)."""
    import os

    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def debug_cause(error: BaseException) -> BaseException | None:
    """What a re-raised error names as its cause: nothing (users see one clear message), or,
    under ``ALLOTMENT_DEBUG=1``, the ``error`` it came from, so tracebacks show the whole chain.
    Use as ``raise AllotmentError(...) from debug_cause(e)``; read when raised, not at import."""
    return error if debugging() else None


def show_whole_chain(error: BaseException) -> None:
    """Make ``error``'s traceback show every exception of its chain: the core raises its outermost
    errors ``from None``, so the contexts it suppressed are shown again."""
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        link.__suppress_context__ = False
        link = link.__cause__ or link.__context__
