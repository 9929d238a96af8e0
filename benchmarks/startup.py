"""Start-up time of each top-level script: `--help`, and a bad flag (argparse's error), in fresh processes.

A new user's first contact is `python sft.py --help`; it used to take ~10 s because TRL's and transformers' imports
pull in peft, bitsandbytes, torch.compile and the model code. Each command runs --repeats times in turn (the first
run of a session also pays for a cold file cache) and reports the fastest wall time and that run's CPU time (user +
system of the child); CPU time is the steadier number on a shared machine. No limit is asserted anywhere: the target
(--help and argument errors in ~3 s) is read off this table.

    python benchmarks/startup.py
    python benchmarks/startup.py --scripts sft.py,export.py --repeats 5
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ("sft.py", "eval.py", "export.py", "training_data.py", "create_mixed_dataset.py")
CASES = {"help": ["--help"], "bad flag": ["--no_such_flag"]}


def timed(command):
    """(wall seconds, CPU seconds of the child, exit status) of one run, its output discarded."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime, process.returncode


def measure(scripts, repeats):
    runs = {(script, case): [] for script in scripts for case in CASES}
    for _ in range(repeats):  # in turn, so a burst of other load spreads over all commands
        for (script, case), found in runs.items():
            found.append(timed([sys.executable, script, *CASES[case]]))
    results = []
    for (script, case), found in runs.items():
        wall, cpu, status = min(found)
        results.append({"script": script, "case": case, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                        "exit_status": status, "wall_s_per_repeat": [round(run[0], 2) for run in found]})
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scripts", default=",".join(SCRIPTS), help="Comma-separated scripts to time.")
    parser.add_argument("--repeats", type=int, default=3, help="Runs of each command; the fastest counts.")
    parser.add_argument("--output", default="benchmarks/results/startup.json", help="Where the JSON goes.")
    args = parser.parse_args()
    results = measure(args.scripts.split(","), args.repeats)
    print(f"{'script':<26}{'case':<10}{'wall s':>8}{'CPU s':>8}  exit")
    for row in results:
        print(f"{row['script']:<26}{row['case']:<10}{row['wall_s']:>8.2f}{row['cpu_s']:>8.2f}  {row['exit_status']}")
    output = ROOT / args.output
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"python": sys.version.split()[0], "cpu_count": os.cpu_count(), "results": results},
                                 indent=2))


if __name__ == "__main__":
    main()
