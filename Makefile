# Routine tasks. `make test` is what CI runs; `make demo` is the newcomer's first command.
.PHONY: install protos lint typecheck test unit demo bench bench-engine bench-video bench-dashboard clean

install:
	bash scripts/install.sh

protos:
	.venv/bin/python scripts/gen_protos.py

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck:
	.venv/bin/mypy src/sluice services dashboard bench

unit:
	.venv/bin/pytest -q -m "not e2e"

test: install lint typecheck
	.venv/bin/pytest -q --durations=25

demo: install
	bash scripts/demo.sh

bench: install
	.venv/bin/python -m pip install --quiet -e ".[bench]"
	.venv/bin/python -m bench.pipeline

bench-engine: install
	.venv/bin/python -m bench.workflow_engine

bench-video: install
	.venv/bin/python -m bench.video

bench-dashboard: install
	.venv/bin/python -m bench.dashboard

clean:
	rm -rf .venv .sluice demo-output
