"""A command's flags, generated from the fields of its config, and the config they resolve to.

Every value below the command's config class gets a flag named by its dotted key, ``_`` written as
``-`` (``--quant.input.percentile``, ``--train.weight-decay``), with the field's type, its allowed
values and its docstring line as help. A command also keeps the short flags its users know
(``--lr0`` for ``train.lr0``), flags that take a whole section as inline YAML (``--loss '{distill:
1}'``) and flags that read a section from a file (``--quant-config FILE``).

Resolution, later over earlier: the config's defaults, ``--config FILE``, section files, section
flags, value flags. Any mistake is one ``UsageError`` line naming the flag or the file and key.

Example:
    >>> cmd = Command("eval", EvalConfig, run_eval, "COCO mAP", aliases={"--conf": "postprocess.conf"})
    >>> parser = argparse.ArgumentParser(allow_abbrev=False); add_flags(parser, cmd)
    >>> cfg = resolve(cmd, parser.parse_args(["--weights", "m.onnx", "--data", "d.yaml", "--conf", "0.25"]))
"""

from __future__ import annotations

import argparse
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from base.errors import UsageError
from toolchain.config.convert import NULL_WORDS, build, convert, number_from_text
from toolchain.config.docstrings import field_help
from toolchain.config.field_types import ExistingFile, FieldError, describe, hints, shape
from toolchain.config.files import parse_yaml, read_config_file
from toolchain.config.tree import defaults, leaves, lookup, merge, section

REQUIRED = "required, and not given"


@dataclass(frozen=True)
class Command:
    """One subcommand.

    Attributes:
        name: The subcommand (``toolchain <name>``).
        config: Its config dataclass: the only home of its settings' defaults and help.
        run: Runs it on the resolved config; returns the exit status (``None``: 0).
        help: One line for ``toolchain --help``.
        aliases: Short flags users know, to the dotted key they set (a value, or a whole section as YAML).
        files: Flags naming a YAML file that fills a section (``--quant-config``: ``quant``).
        fixed: Keys the command sets itself, not flags, with the reason (``export.imgsz``: the model's size).
    """

    name: str
    config: type
    run: Callable[[Any], int | None]
    help: str
    aliases: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)
    fixed: Mapping[str, str] = field(default_factory=dict)

    def flags(self) -> dict[str, list[str]]:
        """Dotted key of every settable value to its flags, the short one first."""
        out = {}
        for dotted, _, _ in leaves(self.config):
            if dotted not in self.fixed:
                short = [a for a, k in self.aliases.items() if k == dotted]
                out[dotted] = [*short, "--" + dotted.replace("_", "-")]
        return out


def add_flags(parser: argparse.ArgumentParser, command: Command) -> None:
    """Add ``--config``, every value flag, the section flags and the section-file flags of ``command``."""
    parser.add_argument("--config", metavar="FILE", help="YAML of this command's settings (or a resolved config, "
                        "model sidecar or report written by the toolchain); flags override it")  # fmt: skip
    tree = defaults(command.config)
    groups: dict[str, argparse._ArgumentGroup] = {}
    for dotted, names in command.flags().items():
        owner, name = lookup(command.config, dotted)
        top = dotted.split(".")[0] if "." in dotted else ""
        group = groups.get(top) or groups.setdefault(top, parser.add_argument_group(top or "settings"))
        group.add_argument(*names, dest=f"value:{dotted}", default=argparse.SUPPRESS,
                           **_kind(hints(owner)[name]), help=_help(owner, name, _default(tree, dotted)))  # fmt: skip
    for flag, target in command.aliases.items():
        if section(*lookup(command.config, target)) is not None:
            parser.add_argument(flag, dest=f"section:{target}", metavar="YAML", default=argparse.SUPPRESS,
                                help=f"the {target} section as inline YAML, merged over it")  # fmt: skip
    for flag, target in command.files.items():
        parser.add_argument(flag, dest=f"file:{target}", metavar="FILE", default=argparse.SUPPRESS,
                            help=f"YAML file with the {target} section, merged over it")  # fmt: skip


def _kind(hint: Any) -> dict:
    s = shape(hint)
    if s.base is bool:
        return {"action": argparse.BooleanOptionalAction}
    if s.is_container and not (s.base is dict or s.origin is dict) and s.args and s.args[0] is str:
        return {"nargs": "*", "metavar": "STR"}
    if s.is_container:
        return {"metavar": "YAML"}
    if typing.get_origin(s.base) is Literal:
        choices = "{" + ",".join(map(str, s.args)) + "}"
        return {"metavar": choices if len(choices) <= 24 else "NAME"}
    if any(isinstance(c, ExistingFile) for c in s.checks):
        return {"metavar": "FILE"}
    return {"metavar": {int: "N", float: "X", str: "STR"}.get(s.base, "X")}


def _default(tree: dict, dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return REQUIRED
        node = node[part]
    return node


def _help(owner: type, name: str, default: Any) -> str:
    text = field_help(owner).get(name, "")
    allowed = describe(shape(hints(owner)[name]))
    shown = "required" if default is REQUIRED else f"default: {default!r}"
    return f"{text} [{allowed}; {shown}]".replace("%", "%%")


def resolve(command: Command, args: argparse.Namespace) -> Any:
    """The checked config of ``command`` from its defaults, ``--config`` and the given flags.

    Raises:
        UsageError: One line naming the flag (and what it was given) or the file and key.
    """
    tree, origins = merged_tree(command, args)
    try:
        return build(command.config, tree)
    except FieldError as exc:
        raise UsageError(explain(exc, origins, command.flags())) from None


def merged_tree(command: Command, args: argparse.Namespace) -> tuple[dict, dict[str, str]]:
    """The defaults with ``--config``, section files, section flags and value flags merged in, in that
    order, and where each given value came from (dotted key -> ``FILE`` or ``--flag value``)."""
    cls = command.config
    tree, origins = defaults(cls), {}
    given = vars(args)
    if given.get("config"):
        merge(cls, tree, read_config_file(given["config"]), origins, given["config"])
    names = command.flags()
    for dest, text in given.items():
        kind, _, target = dest.partition(":")
        if kind == "file":
            _merge_at(cls, tree, target, read_config_file(text), origins, text)
    for dest, text in given.items():
        kind, _, target = dest.partition(":")
        if kind == "section":
            flag = next(a for a, k in command.aliases.items() if k == target)
            raw = parse_yaml(text, flag)
            if not isinstance(raw, dict):
                raise UsageError(f"{flag} {text}: expected a YAML mapping like '{{key: value}}'")
            _merge_at(cls, tree, target, raw, origins, f"{flag} {text}")
    for dest, value in given.items():
        kind, _, dotted = dest.partition(":")
        if kind == "value":
            origins[dotted] = _shown(names[dotted][0], value)
            owner, name = lookup(cls, dotted)
            try:
                typed = value if isinstance(value, bool) else _from_flag(hints(owner)[name], value, dotted)
            except FieldError as exc:
                raise UsageError(explain(exc, origins, names)) from None
            _set(tree, dotted, typed)
    return tree, origins


def _from_flag(hint: Any, value: Any, dotted: str) -> Any:
    if isinstance(value, list):  # nargs="*"
        return convert(hint, value, dotted)
    return from_text(hint, value, dotted)


def from_text(hint: Any, text: str, key: str) -> Any:
    """A command-line string as the type ``hint`` asks for (containers as inline YAML), checked."""
    s = shape(hint)
    if s.optional and text.lower() in NULL_WORDS:
        return None
    if s.is_config or s.is_container:
        return convert(hint, parse_yaml(text, key), key)
    if s.base is bool:
        words = {**dict.fromkeys(("true", "yes", "1", "on"), True), **dict.fromkeys(("false", "no", "0", "off"), False)}
        if text.lower() not in words:
            raise FieldError(key, f"expected {describe(s)}, got {text!r}")
        return convert(hint, words[text.lower()], key)
    if s.base in (int, float) or (typing.get_origin(s.base) is Literal and not isinstance(s.args[0], str)):
        return number_from_text(hint, text, key)
    return convert(hint, text, key)


def _shown(flag: str, value: Any) -> str:
    """The flag as given: ``--iou 5``, ``--no-sqnr``, ``--split val test``."""
    if isinstance(value, bool):
        return flag if value else f"--no-{flag[2:]}"
    return f"{flag} {' '.join(value) if isinstance(value, list) else value}"


def _merge_at(cls: type, tree: dict, target: str, raw: dict, origins: dict, source: str) -> None:
    node, owner = tree, cls
    for part in target.split("."):
        if not isinstance(node.get(part), dict):
            return  # the section itself is wrong (in a file): building reports it
        node, owner = node[part], section(owner, part)
    merge(owner, node, raw, origins, source, target + ".")


def _set(tree: dict, dotted: str, value: Any) -> None:
    *path, name = dotted.split(".")
    for part in path:
        if not isinstance(tree.get(part), dict):
            return  # the section itself is wrong (in a file): building reports it
        tree = tree[part]
    tree[name] = value


def explain(exc: FieldError, origins: Mapping[str, str], names: Mapping[str, list[str]]) -> str:
    """One line: where the bad value came from (flag and value, or file), its key, what is allowed."""
    key = exc.key
    source = origins.get(key)
    if source is None:
        related = [s for k, s in origins.items() if _under(k, key) or _under(key, k)]
        source = related[-1] if related else None
    flag = (names.get(key) or ["--" + key.replace("_", "-")])[0]
    if source is None and exc.message == REQUIRED:
        return f"{flag} is required (or '{key}:' in the --config file)"
    if source is None:
        return f"{flag}: {exc.message}"
    if not key or source.split(" ")[0].replace("--no-", "--") in names.get(key, []):  # the flag of this very key
        return f"{source}: {exc.message}"
    return f"{source}: {key}: {exc.message}"


def _under(key: str, parent: str) -> bool:
    return not parent or key.startswith(parent + ".") or key.startswith(parent + "[")


__all__ = ["Command", "add_flags", "explain", "from_text", "merged_tree", "resolve"]
