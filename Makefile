# Two targets do everything on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= out/demo

.PHONY: setup demo test test-quick lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Install the project and its test tools with the tested versions pinned by constraints.txt.
setup: $(BIN)/python
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"

demo: setup
	bash scripts/demo.sh $(DEMO_DIR)

# The whole suite (CI runs this) on TEST_WORKERS pytest-xdist workers: each has its own LSL session
# (tests/conftest.py) and runs whole modules (--dist loadfile), those with the most slow tests first. Three
# workers on 2 cores overlap the device tests' real-time waits with the CPU-bound tests (quiet machine:
# 224 s with 4, 237 s with 3, about 600 s in one process); 3, not 4, because on a slow machine (session 7's
# ran 3-4x slower) the real-time simulators starve sooner. TEST_WORKERS=0 runs it in one process.
# The modules marked `realtime` (simulated devices in real time, checked to the millisecond or the lost
# sample) run afterwards in one process on an otherwise idle machine: next to CPU-bound tests on 2 cores a
# starved simulator dropped samples, frames or stamped late (3 of 680 tests failed so in one CI run). Both
# parts always run; the target fails if either does.
TEST_WORKERS ?= 3
PYTEST_ONE := QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q
PYTEST := $(PYTEST_ONE) -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test: setup
	$(PYTEST) -m "not realtime"; a=$$?; $(PYTEST_ONE) -m realtime; b=$$?; [ $$a -eq 0 ] && [ $$b -eq 0 ]
	$(BIN)/ruff check .

# A quick local run while working: the suite without the tests marked slow (CMCL-Net training, the app's
# recordings, the multi-host test). CI and `make test` run everything.
test-quick: setup
	$(PYTEST) -m "not slow and not realtime"; a=$$?; $(PYTEST_ONE) -m "realtime and not slow"; b=$$?; [ $$a -eq 0 ] && [ $$b -eq 0 ]

lint: setup
	$(BIN)/ruff check .

# Every benchmark with short settings (each prints a table and writes benchmarks/results/*.json);
# run one by hand with its default settings for the figures in the README.
bench: setup
	$(BIN)/python benchmarks/bench_writer.py --quick
	$(BIN)/python benchmarks/bench_synth.py --quick
	$(BIN)/python benchmarks/bench_sync.py --quick
	$(BIN)/python benchmarks/bench_frontend.py --quick
	$(BIN)/python benchmarks/bench_acquire.py --quick
	$(BIN)/python benchmarks/bench_record.py --minutes 1 --ladder ""
	QT_QPA_PLATFORM=offscreen $(BIN)/python benchmarks/bench_app.py --quick
	$(BIN)/python benchmarks/spotting.py --quick

clean:
	rm -rf $(VENV) out
