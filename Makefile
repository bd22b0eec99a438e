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

# bench.pipeline, then each entry of BENCH_ENTRIES; every one runs even when one before it
# failed, and make fails at the end if any did.
BENCH_ENTRIES := staging scheduler cli_start

bench: install
	.venv/bin/python -m pip install --quiet -e ".[bench]"
	@status=0; \
	.venv/bin/python -m bench.pipeline || status=1; \
	for entry in $(BENCH_ENTRIES); do \
		echo; \
		echo "== python -m bench.$$entry"; \
		.venv/bin/python -m bench.$$entry || status=1; \
	done; \
	exit $$status

bench-engine: install
	.venv/bin/python -m bench.workflow_engine

bench-video: install
	.venv/bin/python -m bench.video

bench-dashboard: install
	.venv/bin/python -m bench.dashboard

clean:
	rm -rf .venv .sluice demo-output
