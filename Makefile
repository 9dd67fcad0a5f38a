# strahl — the two commands a fresh machine needs:
#   make run    build and run the appliance on its embedded default config
#   make test   every test (unit, property, golden vectors, corpus replay, namespace, two-process)
# Both install what is missing first (scripts/setup.sh is idempotent).

CARGO ?= cargo
BENCH_OUT ?= bench/out
FUZZ_SECONDS ?= 600
FUZZ_TARGETS := ipc_decode native_header reassembler

.PHONY: all setup build run test lint fmt bench fuzz clean

all: build

setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build --release -p strahl-dataplane -p strahl-control

run: build
	@scripts/run.sh

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

test: setup lint
	$(CARGO) test --workspace --locked --no-fail-fast

fmt:
	$(CARGO) fmt --all

# Side-by-side measurements; JSON on stdout, SVG plots in $(BENCH_OUT)/.
bench: setup
	mkdir -p $(BENCH_OUT)
	$(CARGO) build --release -p strahl-bench
	for b in fec seal pipeline loss; do \
	  ./target/release/strahl-bench $$b --plot $(BENCH_OUT)/$$b.svg | tee $(BENCH_OUT)/$$b.json || exit 1; \
	done

# Coverage-guided fuzzing (needs `cargo install cargo-fuzz`; stable toolchain via RUSTC_BOOTSTRAP).
fuzz:
	for t in $(FUZZ_TARGETS); do \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --fuzz-dir crates/fuzz $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

clean:
	$(CARGO) clean
