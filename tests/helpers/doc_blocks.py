"""The fenced blocks of README.md and docs/*.md, and the documented commands inside them.

Conventions a doc page may use (HTML comments, invisible when rendered), each placed right
before a fenced block (only blank lines between):
  <!-- not run: REASON -->   the block is not executed by tests/docs (give the reason)
  <!-- setup: PYTHON -->     hidden Python run in the page's namespace before the block
  <!-- new process: REASON --> this block and the next ones run in a fresh interpreter
The Python blocks of a page run in order in one namespace (tests/docs/test_python_blocks.py).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHELL_LANGS = frozenset({"bash", "sh", "shell", "console"})
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
_DIRECTIVE = re.compile(r"<!--\s*(not run|setup|new process):(.*?)-->", re.DOTALL)
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_INLINE = re.compile(r"(?<!`)`([^`]+)`(?!`)")
_SEPARATORS = frozenset({"&&", "||", ";", "|", "&"})


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its text and the directive before it."""

    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    skip_reason: str | None = None
    setup: str | None = None
    new_process: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


@dataclass(frozen=True)
class Command:
    """One documented command line: environment assignments, then the words of the command."""

    block: Block
    line: str  # as written (continuations joined)
    env: dict[str, str]
    argv: list[str]


def documents() -> list[Path]:
    """README.md and every docs/*.md page, in a stable order."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """Every fenced block of a markdown file, in order, with the directive right before it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, lang, start = match.group(2), match.group(3).lower(), i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        directives = _directives_before(lines, start)
        found.append(
            Block(
                path=path,
                line=start + 1,
                lang=lang,
                text="\n".join(body) + "\n",
                skip_reason=directives.get("not run"),
                setup=directives.get("setup"),
                new_process=directives.get("new process"),
            )
        )
        i += 1
    return found


def _directives_before(lines: list[str], start: int) -> dict[str, str]:
    """The directive comments stacked right above line `start` (blank lines allowed)."""
    end = start - 1
    while end >= 0:  # a fence or any prose line above ends the search
        text = lines[end].strip()
        if text and not text.endswith("-->"):
            break
        if not text:
            end -= 1
            continue
        begin = end
        while begin > 0 and "<!--" not in lines[begin]:
            begin -= 1
        match = _DIRECTIVE.search("\n".join(lines[begin : end + 1]))
        if not match:
            break
        found = _directives_before(lines, begin)
        found[match.group(1)] = match.group(2).strip()
        return found
    return {}


def python_blocks(path: Path) -> list[Block]:
    return [b for b in blocks(path) if b.lang in ("python", "py")]


def python_segments(path: Path) -> list[list[Block]]:
    """The Python blocks of a page grouped by interpreter (split at `new process`)."""
    segments: list[list[Block]] = []
    for block in python_blocks(path):
        if not segments or block.new_process is not None:
            segments.append([])
        segments[-1].append(block)
    return segments


def shell_commands(block: Block) -> list[Command]:
    """The commands of a shell block (`$ ` prompts in an untagged block), comments stripped.

    Lines ending in a backslash are joined; `a && b`, `a; b`, `a | b` and `a &` give one
    Command per part. Leading `NAME=value` words become the Command's environment.
    """
    if block.lang not in SHELL_LANGS and block.lang != "":
        return []
    prompt_only = block.lang in ("", "console")
    commands: list[Command] = []
    for line in _logical_lines(block.text):
        stripped = line.strip()
        if prompt_only:
            if not stripped.startswith("$ "):
                continue
            stripped = stripped[2:]
        elif stripped.startswith("$ "):
            stripped = stripped[2:]
        if not stripped or stripped.startswith("#"):
            continue
        for words in _split_commands(stripped):
            env: dict[str, str] = {}
            while words and _ASSIGNMENT.match(words[0]):
                name, _, value = words.pop(0).partition("=")
                env[name] = value
            if words:
                commands.append(Command(block, stripped, env, words))
    return commands


def _logical_lines(text: str) -> list[str]:
    """Lines, with backslash continuations and quotes left open across lines joined."""
    joined: list[str] = []
    pending = ""
    for raw in text.splitlines():
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        candidate = pending + raw
        try:
            _split_commands(candidate)
        except ValueError:  # a quote still open: the command goes on on the next line
            pending = candidate + "\n"
            continue
        joined.append(candidate)
        pending = ""
    if pending:
        joined.append(pending)
    return joined


def _split_commands(line: str) -> list[list[str]]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    parts: list[list[str]] = [[]]
    for token in lexer:
        if token in _SEPARATORS:
            parts.append([])
        else:
            parts[-1].append(token)
    return [p for p in parts if p]


_PYTHONS = frozenset({"python", "python3", ".venv/bin/python"})
_MODULES = {"cli": "digits", "service": "service", "service.healthcheck": "healthcheck"}


def program_of(command: Command) -> tuple[str, list[str]] | None:
    """("digits" | "service" | "healthcheck" | "make", its arguments), or None for others.

    `.venv/bin/digits`, `digits` and `python -m cli` are all the `digits` command.
    """
    argv = command.argv
    if argv[0] in ("digits", ".venv/bin/digits"):
        return "digits", argv[1:]
    if argv[0] in _PYTHONS and len(argv) >= 3 and argv[1] == "-m" and argv[2] in _MODULES:
        return _MODULES[argv[2]], argv[3:]
    if argv[0] == "make":
        return "make", argv[1:]
    return None


def inline_commands(path: Path) -> list[Command]:
    """Command lines quoted in running text (`make run PORT=50052`), outside fenced blocks.

    A span counts when it has an option, a NAME=value word or is a `make` line: a bare
    `digits schedule` names a command in prose; a span with `[`, `...` or `<` is a synopsis.
    """
    commands: list[Command] = []
    inside = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if _FENCE.match(line):
            inside = not inside
            continue
        for span in [] if inside else _INLINE.findall(line):
            if any(marker in span for marker in ("[", "...", "<")) or not (
                re.search(r"(^|\s)(--?\w|\w+=)", span) or "make " in span
            ):
                continue
            try:
                commands.extend(shell_commands(Block(path, number, "sh", span)))
            except ValueError:  # not shell words (an unbalanced quote): not a command
                continue
    return commands


def all_commands() -> list[Command]:
    """Every command line of every page (any program), fenced and inline."""
    found: list[Command] = []
    for path in documents():
        for block in blocks(path):
            found.extend(shell_commands(block))
        found.extend(inline_commands(path))
    return found


def documented_commands() -> list[tuple[Command, str, list[str]]]:
    """Every `digits` / `python -m service...` / `make` command line in the docs."""
    found = []
    for path in documents():
        for block in blocks(path):
            for command in shell_commands(block):
                program = program_of(command)
                if program is not None:
                    found.append((command, *program))
        for command in inline_commands(path):
            program = program_of(command)
            if program is not None:
                found.append((command, *program))
    return found


def transcript(block: Block) -> list[tuple[Command, list[str]]]:
    """A `$ command` / output session: each command with the output lines shown under it."""
    steps: list[tuple[Command, list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            (command,) = shell_commands(Block(block.path, block.line, "sh", line[2:]))
            steps.append((command, []))
        elif steps:
            steps[-1][1].append(line)
    return steps


def find_command(page: str, kind: str, *words: str) -> Command:
    """The first documented `kind` command of `page` whose arguments start with `words`.

    Tests run documented commands through this, so a doc that drops or renames one fails.
    """
    for command, found_kind, args in documented_commands():
        if (command.block.path, found_kind) == (REPO / page, kind) and tuple(
            args[: len(words)]
        ) == words:
            return command
    raise LookupError(f"{page} documents no command starting with {' '.join(words)!r}")
