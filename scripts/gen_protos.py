"""Regenerate the Python code for protos/ into src/sluice/v1 (the one place generated code lives).

Usage: python scripts/gen_protos.py [OUT_ROOT]   (OUT_ROOT defaults to src/)
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PACKAGE_INIT = '"""Code generated from protos/sluice/v1 by scripts/gen_protos.py. Do not edit."""\n'


def generate(out_root: Path) -> list[Path]:
    """Generate *_pb2.py, *_pb2.pyi and *_pb2_grpc.py for every proto; return the files written."""
    import grpc_tools
    from grpc_tools import protoc

    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    out_root.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    package_dir = out_root / "sluice" / "v1"
    (package_dir / "__init__.py").write_text(PACKAGE_INIT)
    return sorted(p for p in package_dir.iterdir() if p.suffix in {".py", ".pyi"})


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "src"
    for path in generate(out):
        print(path.relative_to(out))
