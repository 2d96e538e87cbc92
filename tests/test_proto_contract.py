"""The proto's contract as `make lint` guards it: buf's breaking-change rules catch a change that
would break generated clients, and the files are buf-formatted."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUF = ROOT / ".venv" / "buf" / "node_modules" / ".bin" / "buf"
PROTOS = ROOT / "protos"


@pytest.fixture(scope="module")
def buf() -> Path:
    if not BUF.exists():
        pytest.fail(f"{BUF} is missing: `make test` and `make lint` install it")
    return BUF


def changed(tmp_path: Path, old: str, new: str) -> Path:
    copy = tmp_path / "protos"
    shutil.copytree(PROTOS, copy)
    resources = copy / "modelconfig" / "v1" / "resources.proto"
    text = resources.read_text()
    assert old in text
    resources.write_text(text.replace(old, new, 1))
    return copy


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        ("string model_name = 2;", "string model_name = 22;", 'field "2" with name "model_name"'),
        ("int32 context_window = 10;", "int64 context_window = 10;", "changed type"),
        ("  SOURCE_DEFAULT = 3;\n", "", 'enum value "3"'),
    ],
)
def test_a_breaking_change_fails_buf_breaking(buf, tmp_path, old, new, said):
    done = subprocess.run(
        [str(buf), "breaking", str(changed(tmp_path, old, new)), "--against", str(PROTOS)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode != 0 and said in done.stdout, done


def test_an_added_field_is_not_breaking(buf, tmp_path):
    copy = changed(tmp_path, "  int64 successor_id = 18;\n",
                   "  int64 successor_id = 18;\n  // A note.\n  string note = 99;\n")
    done = subprocess.run(
        [str(buf), "breaking", str(copy), "--against", str(PROTOS)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done


def test_the_proto_files_are_buf_formatted(buf):
    done = subprocess.run(
        [str(buf), "format", "--diff", "--exit-code"],
        cwd=PROTOS, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stdout
