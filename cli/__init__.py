"""tomobile.cli: the `tomobile` command. The parser and error mapping (main.py), one module per
command (cmd_*.py), argument checks (checks.py) and quiet output (quiet.py). A command parses its
arguments and calls library functions of tomobile.export / tomobile.runtime; nothing imports cli."""
