"""The field walk: every field of every command's config is reachable from the command line and from
YAML, and read by the code that runs the command (no setting is dead).

Reads are recorded while each command runs once on the tiny fixtures (``conftest.py``); settings that
only one choice of another setting uses (a schedule's ``cycle``) are read by running every choice.
A field that is added and never read fails the walk, and so does one that only its own
``__post_init__`` reads (reads while a config is built, logged, compared or hashed are no uses), as
the last tests show.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal

import pytest
import torch
import yaml

from toolchain.commands import COMMANDS
from toolchain.config.convert import check_fields, convert
from toolchain.config.field_types import ExistingFile, MultipleOf, Range, TorchDevice, Writable, hints, shape
from toolchain.config.flags import merged_tree
from toolchain.config.tree import defaults, leaves, lookup, to_dict
from toolchain.training.schedulers import SCHEDULES, ScheduleConfig, create_scheduler

RUNS = ["data_run", "check_data_run", "split_data_run", "tile_data_run", "baseline_run", "export_run", "eval_runs",
        "ptq_run", "parity_run", "sensitivity_run", "qat_run", "analyze_run"]  # fmt: skip


def _number(s, default: Any) -> Any:
    lo = next((c for c in s.checks if isinstance(c, Range)), Range())
    step = next((c.n for c in s.checks if isinstance(c, MultipleOf)), 1)
    if s.base is int:
        start = default if isinstance(default, int) else int(lo.ge if lo.ge is not None else 0)
        value = start + step
        return value if lo.holds(value) else start - step
    value = default / 2 if default else 0.5
    return value if lo.holds(value) else (lo.ge if lo.ge is not None else 1.0)


def sample(hint: Any, default: Any, existing: str) -> Any:
    """A valid value of the field's type other than its default (plain YAML values)."""
    s = shape(hint)
    if typing.get_origin(s.base) is Literal:
        return next(a for a in s.args if a != default)
    if s.base is bool:
        return not default
    if s.base in (int, float):
        return _number(s, default)
    if any(isinstance(c, TorchDevice) for c in s.checks):
        return "CPU"  # the one device every machine has, spelled other than the default
    if s.base is str:
        suffix = next((c.suffixes[0] for c in s.checks if isinstance(c, Writable) and c.suffixes), "")
        return existing if any(isinstance(c, ExistingFile) for c in s.checks) else "x" + suffix
    if s.base is dict or s.origin is dict:
        key, value = s.args or (str, int)
        return {1 if shape(key).base is int else "fliplr": "a" if shape(value).base is str else 1}
    item = shape(s.args[0])
    if item.is_config:
        return [{"pattern": "model\\.0\\.conv"}]
    return ["val"] if item.base is str else [1]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_setting_has_a_flag_and_a_yaml_key(name, tmp_path, tiny_checkpoint):
    command = COMMANDS[name]
    tree, flags, existing = defaults(command.config), command.flags(), str(tiny_checkpoint)
    required = [a for d in flags if _at(tree, d) is _MISSING for a in (flags[d][-1], existing)]
    for dotted, names in flags.items():
        hint = hints(lookup(command.config, dotted)[0])[lookup(command.config, dotted)[1]]
        default = _at(tree, dotted)
        value = sample(hint, None if default is _MISSING else default, existing)
        expected = to_dict(convert(hint, value, dotted))
        for flag in names:
            got = _at(merged_tree(command, _parse(command, required + _argv(flag, value)))[0], dotted)
            assert to_dict(convert(hint, got, dotted)) == expected, (flag, got, value)
        nested: Any = value
        for part in reversed(dotted.split(".")):
            nested = {part: nested}
        config = tmp_path / f"{dotted}.yaml"
        config.write_text(yaml.safe_dump(nested))
        got = _at(merged_tree(command, _parse(command, required + ["--config", str(config)]))[0], dotted)
        assert to_dict(convert(hint, got, dotted)) == expected, (config.read_text(), got)
    leaf_keys = {d for d, _, _ in leaves(command.config)}
    for dotted in command.fixed:
        assert dotted not in flags and dotted in leaf_keys  # set by the command itself, which says why


_MISSING = object()


def _at(tree: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return _MISSING
        tree = tree[part]
    return tree


def _argv(flag: str, value: Any) -> list[str]:
    if isinstance(value, bool):
        return [flag if value else "--no-" + flag[2:]]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [flag, *value]  # nargs
    if isinstance(value, (list, dict)):
        return [flag, yaml.safe_dump(value, default_flow_style=True).strip()]
    return [flag, str(value)]


def _parse(command, argv: list[str]):
    from toolchain.cli import _Parser
    from toolchain.config.flags import add_flags

    parser = _Parser(prog=command.name)
    add_flags(parser, command)
    return parser.parse_args([str(a) for a in argv])


def every_field(cls: type, config_classes) -> set[tuple[type, str]]:
    return {(c, f.name) for c in config_classes(cls) for f in dataclasses.fields(c)}


def choices_read(field_reads) -> set:
    """Every schedule stepped through its epochs: the settings only some schedules use are read."""
    with field_reads({ScheduleConfig}) as reads:
        for name in SCHEDULES:
            opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
            scheduler = create_scheduler(opt, ScheduleConfig(name=name, warmup_epochs=1), 4)
            for _ in range(4):
                opt.step()
                scheduler.step(0.5) if name == "plateau" else scheduler.step()
    return set(reads)


def test_every_field_of_every_config_is_read(request, cli_tools):
    run_cli, field_reads, config_classes = cli_tools
    runs = []
    for name in RUNS:
        value = request.getfixturevalue(name)
        runs += value if isinstance(value, list) else [value]
    failed = [(r.argv[0], r.err[-300:]) for r in runs if r.code != 0]
    assert not failed, failed
    reads = set().union(*(r.reads for r in runs)) | choices_read(field_reads)
    expected = set().union(*(every_field(c.config, config_classes) for c in COMMANDS.values()))
    unread = sorted(f"{c.__name__}.{f}" for c, f in expected - reads)
    assert not unread, f"fields no command reads (dead settings): {unread}"
    assert {r.argv[0] for r in runs} == set(COMMANDS)  # every command was walked


def _checked_only(obj) -> None:
    """A ``__post_init__`` whose own validation is the only reader of ``unused_setting``."""
    super(type(obj), obj).__post_init__()
    if obj.unused_setting < 0:
        raise ValueError("unused_setting: expected >= 0")


@pytest.mark.parametrize("post_init", [None, _checked_only], ids=["never-read", "read-only-by-its-own-check"])
def test_the_walk_finds_a_field_that_nothing_reads(tmp_path, tiny_checkpoint, cli_tools, post_init):
    run_cli, _, config_classes = cli_tools
    base = COMMANDS["export"]
    grown = dataclasses.make_dataclass(
        "ExportCommandConfig", [("unused_setting", int, dataclasses.field(default=0))],
        bases=(base.config,), frozen=True, namespace={"__post_init__": post_init} if post_init else None,
    )  # fmt: skip
    registry = {**COMMANDS, "export": dataclasses.replace(base, config=grown)}
    run = run_cli(["export", "--weights", tiny_checkpoint, "--out", tmp_path / "m.onnx", "--unused-setting", 3],
                  tmp_path, registry)  # fmt: skip
    assert run.code == 0, run.err
    unread = every_field(grown, config_classes) - run.reads
    assert unread == {(grown, "unused_setting")}


@dataclasses.dataclass(frozen=True)
class _Checked:
    limit: int = 1
    used: int = 0

    def __post_init__(self) -> None:
        check_fields(self)
        if self.limit < 0:  # its own validation reads it: not a use
            raise ValueError("limit: expected >= 0")


def test_reads_while_building_logging_comparing_or_hashing_are_not_uses(cli_tools):
    _, field_reads, _ = cli_tools
    with field_reads({_Checked}) as reads:
        cfg = _Checked(limit=2)
        assert (repr(cfg), cfg == _Checked(), hash(cfg) == hash(_Checked(limit=2))) == (
            "_Checked(limit=2, used=0)", False, True)  # fmt: skip
        assert cfg.used == 0
    assert reads == {(_Checked, "used")}  # limit: only its own check read it, so the walk calls it dead
    assert "__getattribute__" not in _Checked.__dict__ and _Checked(limit=3).limit == 3  # put back


def test_the_post_init_check_reads_through_attributes(cli_tools, monkeypatch):
    """The test above can fail: counted as uses, the reads of ``__post_init__`` and ``__repr__`` show."""
    _, field_reads, _ = cli_tools
    monkeypatch.setattr(field_reads, "NOT_USES", ())
    with field_reads({_Checked}) as reads:
        _Checked(limit=2)
    assert reads == {(_Checked, "limit"), (_Checked, "used")}
    cfg = _Checked(limit=2)
    with field_reads({_Checked}) as reads:
        assert repr(cfg) == "_Checked(limit=2, used=0)"
    assert reads == {(_Checked, "limit"), (_Checked, "used")}
