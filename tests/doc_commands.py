"""What the docs tell a user to type, checked against what exists: every `make` target, every `nba-phase5`
(or `python -m nba_phase5_local`) command and flag, and every flag given to a `tools/` or `bench/` script.

Nothing named in a doc is run: make targets come from the Makefile's rules, the CLI's flags from its argparse
parser (``nba_phase5_local.cli.build_parser``), a script's from the parser its ``main`` builds, caught at its
first ``parse_args``. Code is what sits in fenced blocks and in `code spans` (a span may wrap a line).
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^\s*(```|~~~)")
SPAN = re.compile(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
SUBSHELL = re.compile(r"\$\([^()]*\)")  # `$(date -u +%F)`: a value, whatever it runs
BEFORE = r"(?:^|(?<=[\s;&|(]))"  # a program name starts a word, not the middle of one (`nba-phase5-trigger-sub`)
CLI = re.compile(BEFORE + r"(?:\S*/)?(?:nba-phase5|python3?\s+-m\s+nba_phase5_local)(?=\s|$)")
# make as a command (first, after VAR=value or a separator), not the word in prose or output ("to make stragglers")
MAKE = re.compile(r"(?:^|&&|\|\||[;|(])\s*(?:[A-Za-z_]\w*=\S*\s+)*make(?=\s)")
SCRIPT = re.compile(BEFORE + r"(?:\S*/)?((?:tools|bench)/[a-z_]+\.py)(?=\s|$)")
SEPARATOR = re.compile(r"&&|\|\||[;|&]")  # `worker … &` ends a command too
MAKE_VALUED = {"-C", "-f", "-j", "-I", "-o", "-W"}
TARGET = re.compile(r"^[a-z][a-z0-9-]*$")
RULE = re.compile(r"^([^\s#=:$][^=:]*?)\s*::?(?!=)")


@dataclass(frozen=True)
class Snippet:
    doc: str
    line: int
    text: str


def snippets(path: Path, shown: str) -> Iterator[Snippet]:
    """Each line of the fenced code blocks (a trailing ``\\`` joins the next) and each code span of ``path``.

    :param path: the Markdown file.
    :param shown: its name in a problem.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    prose, fenced, start = [], False, 0
    pending = ""
    for number, line in enumerate(lines, 1):
        if FENCE.match(line):
            fenced = not fenced
            prose.append("")
            continue
        if not fenced:
            prose.append(line)
            continue
        prose.append("")
        start = start if pending else number
        pending += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            yield Snippet(shown, start, pending)
            pending = ""
    text = "\n".join(prose)
    for match in SPAN.finditer(text):
        yield Snippet(shown, text.count("\n", 0, match.start()) + 1, match.group(2).replace("\n", " "))


def words_after(text: str, end: int) -> list[str]:
    """The words of the command starting at ``end``, up to the next `&&`, `;` or `|`, without brackets.

    :param text: the snippet.
    :param end: where the program's name ends in it.
    """
    rest = SEPARATOR.split(text[end:], maxsplit=1)[0]
    return [w.strip("[](),.;:'\"") for w in rest.split()]


def makefile_targets(makefile: Path = ROOT / "Makefile") -> set[str]:
    """Every target a rule of ``makefile`` names (``a b: deps`` names two).

    :param makefile: the Makefile.
    """
    targets: set[str] = set()
    for line in makefile.read_text().splitlines():
        if (rule := RULE.match(line)) and not line.startswith("\t"):
            targets |= set(rule.group(1).split())
    return targets


def make_problems(words: list[str], targets: set[str]) -> list[str]:
    """The targets among ``words`` (the words after ``make``) that are not in ``targets``.

    :param words: the words after ``make``, up to the command's end.
    :param targets: the Makefile's targets.
    """
    problems, skip = [], False
    for word in words:
        if skip or "=" in word or word.startswith("-"):  # VAR=value, -C dir, -j 2: not targets
            skip = word in MAKE_VALUED
            continue
        if not TARGET.match(word):
            break  # the end of the command: a comment, a placeholder or prose
        if word not in targets:
            problems.append(f"make {word}: no such target in the Makefile")
    return problems


def _takes_value(parser: argparse.ArgumentParser, flag: str) -> bool:
    action = parser._option_string_actions.get(flag)
    return action is not None and action.nargs != 0


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def flag_problems(name: str, parser: argparse.ArgumentParser, words: list[str], *, strict: bool) -> list[str]:
    """The ``--flags`` among ``words`` that ``parser`` (or the sub-command's parser they follow) refuses.

    :param name: how the program is shown in a problem.
    :param parser: the program's argparse parser.
    :param words: the words after the program's name.
    :param strict: an unknown sub-command is a problem (the CLI); otherwise the words are prose, not a command.
    """
    problems: list[str] = []
    current, chosen, skip = parser, "", False
    commands = _subcommands(parser)
    for word in words:
        if skip:
            skip = False
        elif word.startswith("--"):
            flag = word.split("=", 1)[0]
            if flag not in current._option_string_actions:
                where = f"{name} {chosen}" if chosen else name
                problems.append(f"{where}: no flag {flag}")
            skip = "=" not in word and _takes_value(current, flag)
        elif commands and not chosen and not word.startswith(("<", "$", "…", "-")):
            if word not in commands:
                return [*problems, f"{name}: no command {word!r}"] if strict else problems
            current, chosen = commands[word], word
    return problems


class _Built(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def script_parser(script: str) -> argparse.ArgumentParser | None:
    """The parser ``script``'s ``main`` builds, caught at its first parse (nothing after it runs); None when
    the script has no argparse parser.

    :param script: the script's path in the checkout (``tools/localstack.py``).
    """
    path = ROOT / script
    if "ArgumentParser" not in path.read_text():
        return None
    spec = importlib.util.spec_from_file_location(f"_doc_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # dataclasses look themselves up
    sys.path.insert(0, str(path.parent))  # as `python tools/x.py` runs it: its folder first
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
        del sys.modules[spec.name]

    def caught(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> Any:
        raise _Built(self)

    parse_args = argparse.ArgumentParser.parse_args
    argparse.ArgumentParser.parse_args = caught
    try:
        module.main([])
    except _Built as built:
        return built.parser
    finally:
        argparse.ArgumentParser.parse_args = parse_args
    return None


def problems_in(snippet: Snippet, targets: set[str], cli: argparse.ArgumentParser) -> list[str]:
    """Every target, command and flag ``snippet`` names that does not exist, as ``doc:line: problem``.

    :param snippet: a line of a fenced block or a code span.
    :param targets: the Makefile's targets.
    :param cli: the package's CLI parser.
    """
    text = SUBSHELL.sub("VALUE", snippet.text)
    found = []
    for match in MAKE.finditer(text):
        found += make_problems(words_after(text, match.end()), targets)
    for match in CLI.finditer(text):
        found += flag_problems("nba-phase5", cli, words_after(text, match.end()), strict=True)
    for match in SCRIPT.finditer(text):
        script = match.group(1)
        if not (ROOT / script).is_file():
            found.append(f"{script}: no such script")
            continue
        words = words_after(text, match.end())
        parser = script_parser(script) if any(w.startswith("--") for w in words) else None
        if parser is None and any(w.startswith("--") for w in words):
            found.append(f"{script}: takes no flags")
        elif parser is not None:
            found += flag_problems(script, parser, words, strict=False)
    return [f"{snippet.doc}:{snippet.line}: {problem}" for problem in found]


def docs(root: Path = ROOT) -> list[Path]:
    """The docs a user follows: the README and docs/.

    :param root: the checkout.
    """
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def scan(paths: list[Path], root: Path = ROOT) -> list[str]:
    """Every problem in ``paths`` (:func:`problems_in`), docs named relative to ``root``.

    :param paths: the Markdown files.
    :param root: what their names are shown relative to.
    """
    from nba_phase5_local.cli import build_parser

    targets, cli = makefile_targets(), build_parser()
    return [
        problem
        for path in paths
        for snippet in snippets(path, str(path.relative_to(root)) if path.is_relative_to(root) else path.name)
        for problem in problems_in(snippet, targets, cli)
    ]
