"""The committed stubs (Python and TypeScript) are exactly what `make proto` generates from
protos/ today."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "clients/python/src/modelconfig/v1"
NODE_CLIENT = ROOT / "clients/node"
BUF = ROOT / ".venv/buf/node_modules/.bin/buf"  # the Makefile's $(BUF)


def _our_protos() -> list[str]:
    """The Makefile's $(PROTOS): ours, not the vendored google/api ones, which the Python and Go
    stubs import from packages that ship them (protos/google/api/README.md)."""
    return sorted(
        str(p.relative_to(ROOT / "protos")) for p in (ROOT / "protos/modelconfig").rglob("*.proto")
    )


def test_generated_stubs_are_fresh(tmp_path):
    protos = _our_protos()
    bin_dir = Path(sys.executable).parent
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I.",
            f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
            f"--python_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            f"--mypy_out={tmp_path}",
            f"--mypy_grpc_out={tmp_path}",
            *protos,
        ],
        cwd=ROOT / "protos",
        check=True,
        capture_output=True,
    )
    fresh = {p.name: p.read_text() for p in (tmp_path / "modelconfig/v1").iterdir()}
    committed = {
        p.name: p.read_text()
        for p in GENERATED.iterdir()
        if p.name != "__init__.py" and p.is_file()
    }
    stale = sorted(n for n in fresh.keys() | committed.keys() if fresh.get(n) != committed.get(n))
    assert not stale, f"stale generated stubs {stale}: run `make proto` and commit"


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}


def test_generated_typescript_is_fresh(tmp_path):
    # clients/node/buf.gen.yaml, with its outputs under tmp_path instead; the plugin is the
    # pinned @bufbuild/protoc-gen-es in clients/node/node_modules (`make install` puts it there).
    assert BUF.exists(), f"{BUF} is missing: run `make install`"
    subprocess.run(
        [str(BUF), "generate", "--output", str(tmp_path)],
        cwd=NODE_CLIENT,
        check=True,
        capture_output=True,
    )
    fresh = _files(tmp_path / "src/gen")
    committed = _files(NODE_CLIENT / "src/gen")
    assert fresh, "buf generated nothing"
    stale = sorted(n for n in fresh.keys() | committed.keys() if fresh.get(n) != committed.get(n))
    assert not stale, f"stale generated TypeScript {stale}: run `make proto` and commit"


GO_GENERATED = ROOT / "clients/go/modelconfig/v1"
GO_IMPORT = "modelconfig/clients/go/modelconfig/v1;modelconfigv1"


def test_generated_go_stubs_are_fresh(tmp_path):
    """As `make proto-go` runs it: Debian's protoc, protoc-gen-go and protoc-gen-go-grpc."""
    protos = _our_protos()
    import_paths = "".join(f",M{p}={GO_IMPORT}" for p in protos)
    subprocess.run(
        [
            "protoc",
            "-I.",
            f"--go_out={tmp_path}",
            f"--go_opt=paths=source_relative{import_paths}",
            f"--go-grpc_out={tmp_path}",
            f"--go-grpc_opt=paths=source_relative{import_paths}",
            *protos,
        ],
        cwd=ROOT / "protos",
        check=True,
        capture_output=True,
    )
    fresh = {p.name: p.read_text() for p in (tmp_path / "modelconfig/v1").iterdir()}
    committed = {p.name: p.read_text() for p in GO_GENERATED.iterdir() if p.is_file()}
    stale = sorted(n for n in fresh.keys() | committed.keys() if fresh.get(n) != committed.get(n))
    assert not stale, f"stale generated Go stubs {stale}: run `make proto-go` and commit"
