"""The one base of every error a user can cause, in graphs/ because every package may import graphs.

A `TomobileError` is bad input (a spec, a name, an option value), a missing or damaged file, or an
artifact that fails its check; its message is one line that says what is wrong and what is allowed.
The `tomobile` CLI prints only these as `tomobile: error: ...` and exits 2; any other exception is a
bug and keeps its traceback. The subclasses keep ValueError / KeyError / RuntimeError as a second
base so that callers catching those still catch them.
"""

from __future__ import annotations


class TomobileError(Exception):
    """Base of every user-facing error."""


class InputError(TomobileError, ValueError):
    """A value given to tomobile is not allowed (and no more specific class fits)."""
