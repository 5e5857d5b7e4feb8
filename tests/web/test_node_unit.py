"""web_demo's JavaScript unit tests (node --test web_demo/test/) over a real export's contract.json:
generator bits, tokenizer ids, timesteps, LPL decisions, TDTM schedule, the replays, sha256 and npz;
wan.test.js over a small WanPipeline export's wan_contract.json (flow schedules, prompt cleaning,
tokenizer, un-scaling, the Euler and UniPC replays).
One pytest test per test file, so CI's summary line counts them."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from .conftest import WEB_DEMO, node_binary, require_web_setup

FILES = sorted(p.name for p in (WEB_DEMO / "test").glob("*.test.js"))


def test_there_are_node_tests():
    assert {"generator.test.js", "tokenizer.test.js", "sampler.test.js", "replay.test.js", "manifest.test.js",
            "wan.test.js"} <= set(FILES)


@pytest.mark.parametrize("name", FILES)
def test_node_file(web_tools, request, name):
    require_web_setup()
    env = dict(os.environ)
    if name == "wan.test.js":  # the WanPipeline export's contract; the others read video-dit-tiny's
        env["TOMOBILE_WAN_EXPORT"] = str(request.getfixturevalue("wan_export"))
    else:
        env["TOMOBILE_EXPORT"] = str(request.getfixturevalue("video_export"))
    proc = subprocess.run([node_binary(), "--test", f"test/{name}"], cwd=WEB_DEMO, env=env, capture_output=True,
                          text=True, timeout=600)
    passed = re.search(r"^# pass (\d+)", proc.stdout, re.M)
    failed = re.search(r"^# fail (\d+)", proc.stdout, re.M)
    assert proc.returncode == 0 and failed and failed.group(1) == "0", proc.stdout[-4000:] + proc.stderr[-2000:]
    assert passed and int(passed.group(1)) > 0
