"""A group: several setups behind one endpoint, switched by the request's `model` (llama-server's router mode).

The file names its members under `models:`, keyed by the name clients send as `model` (as llama-swap's config and
Ollama's model names do). A member is written inline, with a setup's own fields (use case, experience, model,
context, overrides), or as `setup: other.yaml`, a setup file of its own whose target must be the group's. The group
owns what one router can have only once: the target, the engine, `serve` and the loading policy.

Loading is as strict as a setup's: unknown fields, a missing member file, a member on another target, a name the
router would rewrite or a value its preset format would cut are errors at their line, exit 2.
"""

import re
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import Field, StringConstraints, ValidationError, field_validator, model_validator

from inferform.engines.router_preset import MEMBER_NAME
from inferform.errors import InferformError, Problem, did_you_mean
from inferform.setup.spec import (
    SLUG,
    Experience,
    ModelSpec,
    Overrides,
    Serve,
    Setup,
    Strict,
    Target,
    UseCase,
    _context,
    _problem,
    parse_setup,
)
from inferform.setup.yamlpos import Located, load_yaml, read_text

MemberName = Annotated[str, StringConstraints(pattern=MEMBER_NAME)]
DURATION = re.compile(r"^(\d+)([smh])$")
PRESET_CUTS = (";", "#")  # llama.cpp's INI reader ends a value at either: `a;b` would be read as `a`
GROUP_TARGETS = ("local", "ssh")
MAX_MEMBERS = 16  # every combination is checked for co-residency (2^16 sums)


class Member(Strict):
    """One member: a setup's own fields inline, or `setup:` naming a setup file (then nothing else)."""

    setup: str | None = Field(None, min_length=1, description="A setup file for this member (relative to the "
                                                              "group file); its target must be the group's.")
    use_case: UseCase | None = Field(None, description="What this member is for (required unless `setup:`).")
    experience: Experience | None = Field(None, description="What to optimise this member for (default latency).")
    model: ModelSpec | None = Field(None, description="Which model; chosen from the catalog when left out.")
    context: Annotated[int | Literal["auto"] | None, Field(None, description="'auto' or a token count.")] = None
    overrides: Overrides | None = Field(None, description="Pin any planned value of this member.")

    @field_validator("context", mode="before")
    @classmethod
    def _ctx(cls, value: Any) -> Any:
        return None if value is None else _context(value)

    @model_validator(mode="after")
    def _inline_or_file(self) -> "Member":
        inline = [f for f in ("use_case", "experience", "model", "context", "overrides")
                  if getattr(self, f) is not None]
        if self.setup is not None and inline:
            raise ValueError(f"a member is either `setup: <file>` or written inline, not both (remove "
                             f"{', '.join(inline)}, or `setup`)")
        if self.setup is None and self.use_case is None:
            raise ValueError("a member needs use_case (and may name model, context, ...), or `setup: <file>`")
        return self


def _duration_s(value: str) -> int:
    match = DURATION.match(value)
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{value!r} is not a duration like '30s', '10m' or '1h'")
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]


class Policy(Strict):
    """Which members are loaded, and for how long they keep memory while idle."""

    max_loaded: int | Literal["auto"] = Field(
        "auto", description="'auto': as many as the plan proves fit in memory together; a number at most that.")
    preload: list[MemberName] = Field([], description="Members loaded when the router starts (llama-server's "
                                                      "load-on-startup); any loaded member may still be evicted "
                                                      "when another is requested and max_loaded are loaded.")
    sleep_idle: str | None = Field(None, description="Free an idle member's weights and KV after this long "
                                                     "('10m'; llama-server's --sleep-idle-seconds); its process "
                                                     "stays and still counts toward max_loaded.")

    @field_validator("max_loaded")
    @classmethod
    def _max(cls, value: Any) -> Any:
        if value != "auto" and not 1 <= value <= MAX_MEMBERS:
            raise ValueError(f"{value} is out of range; use 'auto' or 1 to {MAX_MEMBERS}")
        return value

    @field_validator("sleep_idle")
    @classmethod
    def _sleep(cls, value: str | None) -> str | None:
        if value is not None:
            _duration_s(value)
        return value

    @property
    def sleep_idle_s(self) -> int | None:
        return None if self.sleep_idle is None else _duration_s(self.sleep_idle)


class Group(Strict):
    """A group file: members served by one router on one target."""

    name: str = Field(description="Slug naming the deployment; becomes file and unit names.", pattern=SLUG.pattern)
    target: Target = Field(description="Where every member runs (local or ssh).")
    engine: Literal["llama.cpp"] = Field("llama.cpp", description="Groups run llama-server's router mode.")
    serve: Serve = Field(Serve(), description="Where the one endpoint listens.")
    models: dict[MemberName, Member] = Field(description="The members, by the name clients send as `model`.")
    policy: Policy = Field(Policy(), description="Loading policy.")

    @field_validator("models")
    @classmethod
    def _some(cls, value: dict) -> dict:
        if not value:
            raise ValueError("a group needs at least one member: `models: {coder: {use_case: coding}, ...}`")
        if len(value) > MAX_MEMBERS:
            raise ValueError(f"{len(value)} members; a group has at most {MAX_MEMBERS}")
        return value

    @field_validator("target")
    @classmethod
    def _target(cls, value: Target) -> Target:
        if value.kind not in GROUP_TARGETS:
            raise ValueError(f"groups run on a {' or '.join(GROUP_TARGETS)} target, not kind: {value.kind} (one "
                             "setup per cloud instance for now)")
        return value


class LoadedMember(NamedTuple):
    """A member as a Setup of its own (the group's target and serve), and the file its relative paths follow."""

    name: str
    setup: Setup
    file: str


class LoadedGroup(NamedTuple):
    group: Group
    located: Located
    members: list[LoadedMember]


def json_schema() -> dict[str, Any]:
    schema = Group.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "inferform group"
    return schema


def _validated(located: Located) -> Group:
    data = located.data
    if not isinstance(data, dict):
        raise InferformError.single("a group is a mapping of fields (name, target, serve, models)",
                                    file=located.file, line=1)
    try:
        return Group.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(e, located, Group) for e in exc.errors(include_url=False)]
        problems.sort(key=lambda p: (p.line or 0, p.column or 0))
        raise InferformError(problems) from None


def _member_located(located: Located, name: str) -> Located:
    """The member as a setup document: its own fields, the group's name, target, engine and serve, with every
    position kept, so a problem in it is reported at its line in the group file."""
    data = located.data
    doc = {k: data[k] for k in ("name", "target", "engine", "serve") if k in data}
    doc.update(data["models"][name] or {})
    positions = {}
    for path, pos in located.positions.items():
        if path[:2] == ("models", name):
            positions[path[2:]] = pos
        elif path and path[0] in doc and path[0] not in (data["models"][name] or {}):
            positions[path] = pos
    positions[()] = located.positions.get(("models", name), (1, 1))
    return Located(doc, positions, located.file)


def _cut_values(setup: Setup, located: Located) -> list[Problem]:
    """Values that reach the router's preset and would be cut there at ';' or '#'."""
    problems = []
    file = setup.model.file if setup.model else None
    if file and any(c in file for c in PRESET_CUTS):
        line, col = located.where(("model", "file"))
        problems.append(Problem(f"model.file {file!r} holds ';' or '#': llama-server's preset format ends a value "
                                "there, so the router would open another file", located.file, line, col,
                                "rename or link the file to a name without ';' and '#'"))
    return problems


def _from_file(group: Group, located: Located, name: str, member: Member) -> LoadedMember:
    from inferform.setup.references import check_references
    from inferform.setup.spec import load_setup_located

    where = located.where(("models", name, "setup"))
    path = Path(member.setup or "").expanduser()
    if not path.is_absolute():
        path = Path(located.file).resolve().parent / path
    if not path.is_file():
        raise InferformError.single(f"member {name!r}: setup file {str(path)!r} does not exist", file=located.file,
                                    line=where[0], column=where[1],
                                    hint="name an existing setup file (relative to this group file), or write the "
                                         "member inline (use_case, model, ...)")
    spec, member_located = load_setup_located(str(path))
    check_references(spec, member_located)
    problems = _cut_values(spec, member_located)
    if spec.target.model_dump() != group.target.model_dump():
        problems.append(Problem(
            f"member {name!r}: {member.setup} runs on target kind {spec.target.kind}"
            + (f" ({spec.target.ssh.host})" if spec.target.ssh else "")
            + f" with its own hardware, and the group on kind {group.target.kind}"
            + (f" ({group.target.ssh.host})" if group.target.ssh else "")
            + ": one router serves every member on one machine", located.file, where[0], where[1],
            "give the member file the group's target (the same kind and hardware), or write the member inline"))
    if spec.engine not in ("auto", group.engine):  # auto in a group is the router's llama.cpp
        problems.append(Problem(f"member {name!r}: {member.setup} uses engine {spec.engine}; a group runs "
                                f"{group.engine} (llama-server's router)", located.file, where[0], where[1],
                                f"set engine: {group.engine} in {member.setup}, or leave it out"))
    if problems:
        raise InferformError(problems)
    setup = spec.model_copy(update={"name": group.name, "serve": group.serve})
    return LoadedMember(name, setup, str(path))


def load_group(path: str) -> LoadedGroup:
    """The group, its members each as a checked Setup, and where everything sits in the file."""
    from inferform.setup.references import check_references

    located = load_yaml(read_text(path), path)
    group = _validated(located)
    members: list[LoadedMember] = []
    problems: list[Problem] = []
    for name, member in group.models.items():
        try:
            if member.setup is not None:
                members.append(_from_file(group, located, name, member))
                continue
            doc = _member_located(located, name)
            setup = parse_setup(doc)
            check_references(setup, doc)
            cut = _cut_values(setup, doc)
            if cut:
                raise InferformError(cut)
            members.append(LoadedMember(name, setup, path))
        except InferformError as exc:
            problems.extend(exc.problems)
    for i, name in enumerate(group.policy.preload):
        if name not in group.models:
            line, col = located.where(("policy", "preload", i))
            problems.append(Problem(f"policy.preload names {name!r}, which is no member", path, line, col,
                                    did_you_mean(name, group.models) or f"members: {', '.join(group.models)}"))
    if isinstance(group.policy.max_loaded, int) and len(group.policy.preload) > group.policy.max_loaded:
        line, col = located.where(("policy", "preload"))
        problems.append(Problem(f"policy.preload names {len(group.policy.preload)} members and max_loaded is "
                                f"{group.policy.max_loaded}: llama-server refuses to start when more models load "
                                "at start than may be loaded", path, line, col,
                                "preload at most max_loaded members, or raise max_loaded"))
    if problems:
        raise InferformError(problems)
    return LoadedGroup(group, located, members)
