"""A failed validation row that a merge near-tie explains, shown by replay (issue 33 item 22).

Where eager took a merge decision by less than MIN_MARGIN (graphs/methods/margins.py), a backend's
own rounding may take it the other way: the artifact is right, and its outputs differ from the
stored eager ones far beyond the fp32 threshold (Core AI, video-dit-tiny's `denoiser_tome`, 5.8e-3
at a 3e-7 gap). The seeded case is redrawn until every decision is clear; the real case cannot be.
So, at export, where the eager model is at hand, a FAIL row of an artifact on a case is replayed:
eager is run again with one of that case's near-ties forced the other way (`forced_flips`), for each
near-tie in turn, narrowest first. When the artifact equals one of those runs within the row's own
threshold, on every output, its rows pass with a note naming the decision, its gap and the error
against the forced run. Anything else (no near-tie, or no single flip that reproduces the artifact)
stays a failure: a flip is accepted only where the replay shows it. `tomobile validate DIR` later
has no eager model and reports the rows as stored; the manifest keeps the export's verdict.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..graphs.methods.margins import NearTie, forced_flips, record_margins
from ..graphs.models.exportable import ModelBundle
from ..runtime.artifacts import artifact_runner
from ..runtime.manifest import load_manifest
from ..runtime.validate import FAIL, PASS, ValidationReport, artifact_label, compare, vector_cases

log = logging.getLogger(__name__)

MAX_REPLAYS = 8  # near-ties replayed per failing case, narrowest first: each is one eager call
NEAR_TIE = "near-tie"  # the note of a row passed by replay starts with it


@dataclass(frozen=True)
class Replay:
    """The near-tie whose flip reproduces the artifact, and the artifact's error per output
    against eager with that flip forced."""

    tie: NearTie
    errors: dict[str, float]

    def note(self) -> str:
        worst = max(self.errors.values())
        return (f"{NEAR_TIE}: eager's choice at {self.tie.site} (row {self.tie.index}) is {self.tie.gap:.1e} from "
                f"flipping; the artifact takes the other one and equals eager with it forced (max abs {worst:.1e})")


def replay(wrapper: torch.nn.Module, inputs: tuple[torch.Tensor, ...], actual: dict[str, np.ndarray],
           names: list[str], precision: str) -> Replay | None:
    """The near-tie of eager's call on `inputs` whose flip makes every output equal `actual` (by
    name) within `precision`'s threshold, or None."""
    with torch.no_grad(), record_margins() as found:
        wrapper(*inputs)
    for tie in sorted(found.near, key=lambda t: t.gap)[:MAX_REPLAYS]:
        with torch.no_grad(), forced_flips([tie]):
            forced = wrapper(*inputs)
        rows = {n: compare(f.detach().numpy(), actual[n], precision) for n, f in zip(names, forced, strict=True)}
        if all(status == PASS for _, _, status, _ in rows.values()):
            return Replay(tie, {n: err for n, (err, _, _, _) in rows.items()})
    return None


def _artifact_outputs(folder: Path, artifact: dict, cases: dict, names: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """The artifact's outputs by name on each of `cases` (name -> (inputs, expected))."""
    runner = artifact_runner(folder, artifact)
    try:
        out = {}
        for case, (inputs, _) in cases.items():
            if artifact.get("float_io") == "float16":
                inputs = [x.astype(np.float16) if x.dtype == np.float32 else x for x in inputs]
            out[case] = {n: np.asarray(y, np.float32) for n, y in zip(names, runner.run(inputs), strict=True)}
        return out
    finally:
        if hasattr(runner, "close"):  # Core AI: release the loaded model now
            runner.close()


def explain_near_ties(bundle: ModelBundle, folder: Path, report: ValidationReport) -> ValidationReport:
    """`report` with the FAIL rows that a near-tie flip explains turned into passes with a note
    (module docstring). Rows of split chains and of parts the bundle lacks stay as they are."""
    failing = {(c.artifact, c.case) for c in report.checks if c.status == FAIL}
    if not failing:
        return report
    manifest = load_manifest(folder)
    passed: dict[tuple[str, str], Replay] = {}
    for artifact in manifest["artifacts"]:
        label, part = artifact_label(artifact), artifact["part"]
        wrapper = bundle.parts.get(part)
        vectors = vector_cases(folder, part)
        cases = {case: vectors[case] for a, case in failing if a == label and case in vectors}
        if not cases or wrapper is None or artifact["format"] == "coreml":
            continue
        names = [o["name"] for o in manifest["parts"][part]["outputs"]]
        for case, actual in _artifact_outputs(folder, artifact, cases, names).items():
            inputs = tuple(torch.from_numpy(np.asarray(x)) for x in cases[case][0])
            found = replay(wrapper, inputs, actual, names, artifact.get("precision", "fp32"))
            if found is not None:
                log.info("%s %s: %s", label, case, found.note())
                passed[(label, case)] = found
    checks = [replace(c, status=PASS, note=passed[(c.artifact, c.case)].note())
              if c.status == FAIL and (c.artifact, c.case) in passed else c for c in report.checks]
    return replace(report, checks=checks)
