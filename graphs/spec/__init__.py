"""SPEC, the `--merge` string, read in two steps:

- grammar.py: the body grammar every method's parser uses (`first=V[,V...][,key=value...]`, each
  option at most once), the value spellings (plain ASCII digits, decimals in [0, 1], 0|1 flags)
  and `SpecError`;
- config.py: `none` or `METHOD:BODY` through the method table (graphs/methods/registry.py) into a
  frozen `MergeConfig`, and the `--help` line listing every method's forms.

Each method's own forms are in its module (graphs/methods/tome.py, pitome.py, ...) beside its plan.
"""
