"""Typed configs: dataclasses are the one home of every default, check and help line.

Imports go one way, each module with one job:

- ``field_types``: what a field accepts (``PositiveInt``, ``Pattern``, ``Writable``...), in words too;
- ``checks``, ``machine``: a value against its markers; against this machine (files, GPUs, memory);
- ``docstrings``: a field's help line, from its class docstring;
- ``convert``: values to their types, configs built from mappings, ``check_fields``;
- ``tree``: defaults as a mapping, recursive merge, plain dict out;
- ``files``: the YAML-mapping reader, and the resolved config written beside every output;
- ``flags``: a command's flags generated from its config, and the config they resolve to;
- ``fields``: the one import of a config class (re-exports; nothing here imports it).
"""
