"""Peak resident memory of one call of each exported variant, each in a fresh process.

    python scripts/peak_memory_per_call.py --runtime onnxruntime --threads 2 WORK/r0:transformer \
        WORK/tdtm:transformer_tdtm WORK/drop_tdtm:transformer_tdtm

FOLDER:PART names a `tomobile bench` variant folder and the artifact stem it times (a bench folder
holds one part, run as its program's `forward`; an ExecuTorch program of an export whose parts share
weights keeps them as named methods, which this script does not pick). A child process loads the artifact, runs it once on the export's seeded test-vector inputs and
reports VmHWM (the exact peak of RSS, /proc) after loading and after the call. `tomobile bench` cannot
give this figure: it holds every variant in one process to time them round-robin.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from tomobile.runtime.bench import RUNTIMES, Variant, load_call
from tomobile.runtime.memory import proc_status


def child(runtime: str, folder: str, part: str, threads: int) -> None:
    call = load_call(RUNTIMES[runtime], Variant(part, 0, Path(folder), 1.0, part=part), threads)
    loaded = proc_status()["VmHWM"]
    call()
    print(json.dumps({"loaded_peak_bytes": loaded, "call_peak_bytes": proc_status()["VmHWM"]}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("variants", nargs="+", metavar="FOLDER:PART")
    ap.add_argument("--runtime", default="onnxruntime", choices=sorted(RUNTIMES))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = {}
    for item in args.variants:
        folder, _, part = item.rpartition(":")
        done = subprocess.run([sys.executable, __file__, "--child", args.runtime, folder, part, str(args.threads)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            print(f"peak_memory_per_call: {item}: {last}", file=sys.stderr)
            return 2
        rows[item] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{item}: peak RSS {rows[item]['call_peak_bytes'] / 1e9:.2f} GB "
              f"(after loading {rows[item]['loaded_peak_bytes'] / 1e9:.2f} GB)", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"runtime": args.runtime, "threads": args.threads, "variants": rows}, indent=1))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        sys.exit(0)
    sys.exit(main())
