"""argparse types for the command line's options: a bad value is refused while parsing, before
anything is loaded or written, in one line that names the option (see `OneLineParser`).

Config keys (--set, --config files) are checked in config.py instead, so that the Python API
refuses the same values; these cover the options that are not config keys.
"""
from __future__ import annotations

import argparse
import math

from .errors import UserError
from .paths import input_path, output_path


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments give one line, like every other bad input (the usage is one --help away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def at_least(lo: int):
    """An integer >= lo, e.g. at_least(1) for a count."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {value}")
        return value
    return parse


def seed(text: str) -> int:
    """Any integer torch's generators take."""
    value = at_least(-2**63)(text)
    if value >= 2**63:
        raise argparse.ArgumentTypeError(f"must be below 2**63, got {value}")
    return value


def positive(text: str) -> float:
    """A finite number > 0 (a step size, a time limit)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < math.inf:  # NaN fails both comparisons
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def rhos(text: str) -> list[float]:
    """Comma-separated interpolation weights ρ, each in [0, 1]."""
    try:
        values = [float(r) for r in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(0 <= r <= 1 for r in values):  # NaN fails too
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers in [0, 1], e.g. 1,0.5,0; got {text!r}")
    return values


def out_file(*suffixes: str):
    """A file to write, ending in one of `suffixes` (checked before the work that fills it)."""
    def parse(text: str) -> str:
        try:
            return output_path(text, suffixes, option=None)
        except UserError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse


def out_dir(text: str) -> str:
    """A run folder to write (whether it can be written is train's to say: --dry-run writes nothing)."""
    try:
        return output_path(text, option=None, writable=False)
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def in_path(text: str) -> str:
    """A file or folder to read."""
    try:
        return input_path(text)
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
