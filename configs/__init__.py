"""The YAML configs that ship with nerfgen (installed as ``nerfgen.configs``).

Each maps one to one onto a typed config dataclass; ``--config NAME`` on the command line names
one of them (``nerfgen.config.config_path``), or any YAML file by its path.
"""
