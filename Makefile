# eir-emulator — the project's commands. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= config/eir.yaml

.PHONY: run test lint bench setup setup-unpinned clean deps test-sctp fuzz fuzz-smoke soak

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## The newest versions pyproject.toml allows, without constraints.txt (to refresh it)
setup-unpinned:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

## Start the EIR with config/eir.yaml (SQLite store in data/, demo lists, Diameter :3868, M3UA :2905, metrics :9464)
run: $(STAMP)
	$(BIN)/eir serve --config $(CONFIG)

## Debian packages the tests use as independent peers (tshark, freeDiameter, Redis, Mosquitto,
## PostgreSQL); installed when missing (as root or with sudo), else named loudly — and under CI=true a failure
deps:
	@bash .ci/debian-deps

## The whole test suite, after its own set-up (venv, Debian peers). -rs lists every skip with its reason.
## A run that collects no test fails (pytest exit 5). .ci/run runs the same PYTEST.
PYTEST := $(BIN)/python -m pytest -q -p no:cacheprovider -rs
test: $(STAMP) deps
	$(PYTEST)

## The SCTP tests (S13 and MAP over SCTP, PPIDs and streams checked by tshark, ABORT and restart) in a
## VM whose kernel has SCTP (.ci/sctp-vm; README "SCTP"): installs qemu, a Debian kernel, virtme-ng
test-sctp: $(STAMP)
	@[ -x $(BIN)/vng ] || $(BIN)/pip install -q -c constraints.txt -e '.[dev,sctp]'
	@bash .ci/sctp-vm

lint: $(STAMP)
	$(BIN)/ruff check eir protocols netio simulations testkit tests bench fuzz
	$(BIN)/ruff format --check eir protocols netio simulations testkit tests bench fuzz
	$(BIN)/mypy

## Fuzzing (fuzz/, README "Fuzzing"): every decoder and state machine a peer reaches, 1M inputs per
## target (coverage-guided with atheris/libFuzzer; long: run it overnight). fuzz-smoke: 30 s per
## target, two at a time, as CI runs it. Corpora in .fuzz/corpus, failing inputs in .fuzz/artifacts.
FUZZ_DEPS := [ -n "$$($(BIN)/pip list 2>/dev/null | grep -i '^atheris ')" ] || $(BIN)/pip install -q -c constraints.txt -e '.[dev,fuzz]'
fuzz: $(STAMP)
	@$(FUZZ_DEPS)
	$(BIN)/python -m fuzz run all --runs 1000000 --jobs 2

fuzz-smoke: $(STAMP)
	@$(FUZZ_DEPS)
	$(BIN)/python -m fuzz run all --seconds 30 --jobs 2

## Soak (bench/soak.py): S13 and MAP together for 10 minutes at 80 % of what the machine does (half each);
## fails on any unanswered request, RSS growth >= 5 % or a p99 drifting past 3 x its median
soak: $(STAMP)
	$(BIN)/python -m bench.soak --out bench/soak.json

## Benchmarks: print figures and write bench/results.json
bench: $(STAMP)
	$(BIN)/python -m bench --out bench/results.json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache
