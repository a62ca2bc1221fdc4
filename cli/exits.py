"""The exit codes of every `digits` sub-command: one meaning each, listed in `digits --help`."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitCode", "describe_exit_codes"]


class ExitCode(IntEnum):
    """What a `digits` process's exit status means, whichever sub-command ran."""

    OK = 0  # done as asked
    FAILED = 1  # an error: a file, directory or registry entry that is missing or unreadable
    USAGE = 2  # bad flags or settings (argparse uses 2 as well)
    NOT_PUBLISHED = 3  # train: the gate, a divergence or the data refused to publish
    INTEGRITY = 4  # models: a stored file of a version is missing or altered
    SERVICE = 5  # predict, monitor: the server answered with an error or could not be reached
    INTERRUPTED = 130  # Ctrl-C / SIGINT (128 + 2, the shell's convention)


_MEANINGS = {
    ExitCode.OK: "done as asked",
    ExitCode.FAILED: "an error (the message names it)",
    ExitCode.USAGE: "bad flags or settings",
    ExitCode.NOT_PUBLISHED: "train: trained, but the gate, a divergence or the data said no",
    ExitCode.INTEGRITY: "models: a stored file of a version is missing or altered",
    ExitCode.SERVICE: "predict, monitor: the server answered with an error or could not be reached",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}


def describe_exit_codes() -> str:
    """The table shown at the end of `digits --help`."""
    lines = ["exit codes (the same for every sub-command):"]
    lines += [f"  {int(code):>3}  {_MEANINGS[code]}" for code in ExitCode]
    return "\n".join(lines)
