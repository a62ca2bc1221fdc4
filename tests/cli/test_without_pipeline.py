"""The CLI of an install without the pipeline extra (the serve image): serving works, training
says what to install, nothing crashes while building the parser."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Run the CLI with `pipeline` and `prefect` made unimportable, as in the serve image.
_BLOCKED = """
import sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pipeline", "prefect"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Blocker())
from cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def _digits(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _BLOCKED, *args], cwd=REPO, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


def test_serve_and_models_work_without_the_pipeline_package() -> None:
    for command in (["--help"], ["serve", "--help"], ["models", "--help"], ["predict", "--help"]):
        done = _digits(*command)
        assert done.returncode == 0, (command, done.stderr)
        assert "Traceback" not in done.stderr


def test_train_without_the_pipeline_package_says_what_to_install() -> None:
    done = _digits("train", "--epochs", "1")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "pip install 'digits[pipeline]'" in done.stderr
