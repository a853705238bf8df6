"""Typed configs: dataclasses are the one home of every default, check and help line.

- ``fields``: what a field accepts (``PositiveInt``, ``Pattern``, ``ExistingPath``...) and its help line;
- ``tree``: defaults as a mapping, recursive merge, checked build, plain dict out;
- ``files``: the YAML-mapping reader, and the resolved config written beside every output;
- ``flags``: a command's flags generated from its config, and the config they resolve to.
"""
