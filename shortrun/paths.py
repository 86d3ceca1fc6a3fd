"""Paths a command will write, checked before any work: a name that cannot be written should
fail at once, not after minutes of sampling or training.

    output_path("~/s.png", (".png", ".npz"))   # -> "/home/me/s.png"
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError


def output_path(text, suffixes: tuple[str, ...] = (), option: str | None = "--out", writable: bool = True) -> str:
    """`text` as a path to write: a file ending in one of `suffixes`, or (no suffixes) a folder.
    Refuses an empty path (it would mean the current folder), a name that is not UTF-8, a
    file where a folder is wanted and (with `writable`) a place this user cannot write; expands a
    leading '~' (quoted, the shell would not). The message starts with `option` where given."""
    def fail(what: str):
        raise UserError(f"{option}: {what}" if option else what)

    text = os.fspath(text)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if not text.strip():
        fail("an empty path; give a file or folder name")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes reach Python as lone surrogates
        fail(f"{text!a} is not valid UTF-8; choose a name in UTF-8")
    path = Path(os.path.expanduser(text))
    if suffixes:
        if path.suffix not in suffixes:
            fail(f"must end in {' or '.join(suffixes)}, got {text!r}")
        if path.is_dir():
            fail(f"{text!r} is a folder; give a file name ending in {' or '.join(suffixes)}")
    elif path.exists() and not path.is_dir():
        fail(f"{text!r} is a file, not a run folder")
    problem = writable and unwritable(path if not suffixes else path.parent)
    if problem:
        fail(problem)
    return str(path)


def companions_free(paths, option: str | None = "--out") -> None:
    """Refuses, before any work, files a command writes beside its main output (OUT.json,
    OUT_curve.png, RUN/eval.json...) where a folder or a non-file stands in their way."""
    for path in map(Path, paths):
        if path.exists() and not path.is_file():
            kind = "a folder" if path.is_dir() else "not a regular file"
            what = f"{str(path)!r} is {kind}, where this command writes a file; move it or choose another name"
            raise UserError(f"{option}: {what}" if option else what)


def unwritable(folder: Path) -> str | None:
    """Why `folder` cannot be written (nor made inside its nearest existing ancestor), or None."""
    where = nearest_existing(folder)
    if not where.is_dir():
        return f"cannot create {str(folder)!r}: {str(where)!r} is a file, not a folder"
    if not os.access(where, os.W_OK | os.X_OK):
        return f"cannot write in {str(folder)!r}: no permission to write in {str(where)!r}"
    return None


def nearest_existing(path: Path) -> Path:
    """`path`, or its nearest ancestor that exists (the folder a write would create the rest in)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def input_path(text, option: str | None = None) -> str:
    """A path to read: not empty, a leading '~' expanded (whether it exists is the reader's to say)."""
    text = os.fsdecode(os.fspath(text))
    if not text.strip():
        raise UserError(f"{option}: an empty path" if option else "an empty path")
    return os.path.expanduser(text)


def read_input(path: str | Path, what: str) -> bytes:
    """The bytes of an input file, or one line saying why they cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise UserError(f"cannot read {what} {path}: {e.strerror or e}") from None
