"""Cortex analyzers written for the tests: real programs, run as processes.

`write_analyzers` lays them out as a Cortex analyzers folder: one
sub-folder per analyzer with its definition files and its program, whose
shebang is this interpreter (it has cortexutils from PyPI).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ECHO = """
import os, sys, tempfile
from cortexutils.analyzer import Analyzer


class Echo(Analyzer):
    def run(self):
        data = self.get_data()
        key = self.get_param("config.key", None, "key is missing")
        if data == "leak":
            sys.stderr.write("cannot log in with key " + key + "\\n")
            sys.exit(3)
        # report() copies the dropped file into the job's output folder.
        with tempfile.TemporaryDirectory() as folder:
            sample = os.path.join(folder, "dropped.txt")
            with open(sample, "w") as handle:
                handle.write("dropped by " + data)
            self.sample = sample
            self.report({"echo": data, "has_key": bool(key), "service": self.get_param("config.service")})

    def summary(self, raw):
        return {"taxonomies": [self.build_taxonomy("malicious", "Echo", "Seen", raw["echo"])]}

    def artifacts(self, raw):
        return [
            self.build_artifact("ip", "10.0.0.1", message="peer", tags=["echo"]),
            self.build_artifact("domain", "evil.example", tags=["echo"]),
            self.build_artifact("file", self.sample, tags=["dropped"]),
        ]


if __name__ == "__main__":
    Echo().run()
"""

SLEEPY = """
import os, subprocess, sys, time
from cortexutils.analyzer import Analyzer


class Sleepy(Analyzer):
    def run(self):
        seconds = float(self.get_data())
        pid_file = self.get_param("parameters.pid_file")
        if pid_file:
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
            with open(pid_file, "w") as handle:
                handle.write("%d %d" % (os.getpid(), child.pid))
        time.sleep(seconds)
        self.report({"slept": seconds})

    def summary(self, raw):
        return {"taxonomies": [self.build_taxonomy("info", "Sleepy", "Slept", raw["slept"])]}


if __name__ == "__main__":
    Sleepy().run()
"""

MALFORMED = """
import os, sys
os.makedirs(os.path.join(sys.argv[1], "output"), exist_ok=True)
with open(os.path.join(sys.argv[1], "output", "output.json"), "w") as handle:
    handle.write("{not json")
"""

CRASH = """
raise RuntimeError("analyzer exploded on purpose")
"""

FOREVER = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
while True:
    time.sleep(1)
"""

FLOOD = """
import sys
chunk = "A" * 65536
while True:
    sys.stdout.write(chunk)
"""

LEGACY = """
import json, sys
document = json.load(sys.stdin)
json.dump({"success": True, "full": {"legacy": document["data"]},
           "summary": {"taxonomies": [{"level": "safe", "namespace": "Legacy",
                                       "predicate": "Read", "value": "stdin"}]},
           "artifacts": []}, sys.stdout)
"""

BAD_FULL = """
import json, os, sys
os.makedirs(os.path.join(sys.argv[1], "output"), exist_ok=True)
with open(os.path.join(sys.argv[1], "output", "output.json"), "w") as handle:
    json.dump({"success": True, "full": ["a", "list"], "summary": {}}, handle)
"""


def _definition(
    name: str, command: str, data_types: list[str], **extra: object
) -> dict[str, object]:
    return {
        "name": name,
        "version": "1.0",
        "author": "Cerana tests",
        "url": "https://example.org",
        "license": "AGPL-V3",
        "description": f"{name} test analyzer",
        "dataTypeList": data_types,
        "command": command,
        "baseConfig": extra.pop("baseConfig", name),
        "configurationItems": extra.pop("configurationItems", []),
        "config": extra.pop("config", {}),
    }


ANALYZERS: dict[str, tuple[str, list[dict[str, object]]]] = {
    "Echo": (
        ECHO,
        [
            _definition(
                "Echo",
                "Echo/program.py",
                ["ip", "domain", "other"],
                baseConfig="Echo",
                config={"service": "echo"},
                configurationItems=[
                    {
                        "name": "key",
                        "description": "API key",
                        "type": "string",
                        "required": True,
                    },
                    {
                        "name": "url",
                        "description": "URL",
                        "type": "string",
                        "required": False,
                    },
                ],
            ),
            _definition(
                "EchoLimited",
                "Echo/program.py",
                ["other"],
                baseConfig="Echo",
                configurationItems=[
                    {
                        "name": "key",
                        "description": "API key",
                        "type": "string",
                        "required": True,
                    }
                ],
            ),
        ],
    ),
    "Sleepy": (SLEEPY, [_definition("Sleepy", "Sleepy/program.py", ["other"])]),
    "Malformed": (
        MALFORMED,
        [_definition("Malformed", "Malformed/program.py", ["other"])],
    ),
    "Crash": (CRASH, [_definition("Crash", "Crash/program.py", ["other"])]),
    "Forever": (FOREVER, [_definition("Forever", "Forever/program.py", ["other"])]),
    "Flood": (FLOOD, [_definition("Flood", "Flood/program.py", ["other"])]),
    "Legacy": (LEGACY, [_definition("Legacy", "Legacy/program.py", ["other"])]),
    "BadFull": (BAD_FULL, [_definition("BadFull", "BadFull/program.py", ["other"])]),
}


def write_analyzers(root: Path) -> Path:
    """Writes every test analyzer under ``root``; returns ``root``."""
    for folder, (program, definitions) in ANALYZERS.items():
        path = root / folder
        path.mkdir(parents=True)
        script = path / "program.py"
        script.write_text(f"#!{sys.executable}\n{program}", encoding="utf-8")
        script.chmod(0o755)
        for definition in definitions:
            (path / f"{definition['name']}.json").write_text(json.dumps(definition))
    return root
