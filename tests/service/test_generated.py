"""The committed stubs in service/generated/ are exactly what scripts/gen_proto.sh produces."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GENERATED = REPO / "service" / "generated"


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".pyi")
    }


def test_generated_stubs_are_current(tmp_path: Path) -> None:
    env = {"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"}
    subprocess.run(
        ["bash", str(REPO / "scripts" / "gen_proto.sh"), str(tmp_path)],
        check=True,
        env=env,
        capture_output=True,
        timeout=60,
    )
    fresh = _files(tmp_path / "service" / "generated")
    committed = _files(GENERATED)
    assert fresh, "the generator produced nothing"
    stale = sorted(name for name in fresh if committed.get(name) != fresh[name])
    extra = sorted(set(committed) - set(fresh))
    assert not stale, f"stale stubs, run `bash scripts/gen_proto.sh`: {stale}"
    assert not extra, f"generated files without a .proto: {extra}"


def test_client_does_not_import_v2_stubs() -> None:
    # tritonclient ships its own `inference` protobuf symbols; loading ours next to it would clash.
    code = (
        "import sys, service.client\n"
        "bad = [m for m in sys.modules if 'inference' in m or m.startswith('service.v2')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)
