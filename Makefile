# strahl — the two commands a fresh machine needs:
#   make run    build and run the appliance on its embedded default config
#   make test   every test (unit, property, golden vectors, corpus replay, namespace, two-process)
# Both install what is missing first (scripts/setup.sh is idempotent).

CARGO ?= cargo
BENCH_OUT ?= bench/out
FUZZ_SECONDS ?= 600

.PHONY: all setup build run test lint fmt bench fuzz clean image

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
# reed-solomon-erasure is the GF(2^8) comparison: build its C SIMD for this CPU (its strongest form).
bench: export RUST_REED_SOLOMON_ERASURE_ARCH = native
bench: setup
	mkdir -p $(BENCH_OUT)
	$(CARGO) build --release -p strahl-bench
	for b in fec seal pipeline loss; do \
	  ./target/release/strahl-bench $$b --plot $(BENCH_OUT)/$$b.svg | tee $(BENCH_OUT)/$$b.json || exit 1; \
	done

# Coverage-guided fuzzing (needs `cargo install cargo-fuzz`; stable toolchain via RUSTC_BOOTSTRAP).
# Each target's seed corpus is where its owning crate's replay test reads it (TARGET=DIR).
FUZZ_CORPORA := \
	ipc_decode=crates/fuzz/corpus/ipc_decode \
	video_clip=crates/fuzz/corpus/video_clip \
	kms_wire=crates/dp/capture/fuzz_corpus/kms_wire \
	native_header=crates/fuzz/corpus/native_header \
	reassembler=crates/fuzz/corpus/reassembler \
	nvhttp_query=crates/cp/gamestream/fuzz_corpus/query \
	nvhttp_pair=crates/cp/gamestream/fuzz_corpus/pair \
	mdns_query=crates/cp/gamestream/fuzz_corpus/mdns \
	rtsp_request=crates/cp/rtsp/fuzz_corpus/request \
	rtsp_sdp=crates/cp/rtsp/fuzz_corpus/sdp \
	enet_input=crates/cp/enet/fuzz_corpus/input \
	enet_control=crates/cp/enet/fuzz_corpus/control \
	native_control=crates/cp/native/fuzz_corpus/control \
	native_host=crates/cp/native/fuzz_corpus/host \
	client_media=crates/client/fuzz_corpus/media
fuzz:
	for tc in $(FUZZ_CORPORA); do t=$${tc%%=*}; c=$${tc#*=}; \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --fuzz-dir crates/fuzz $$t $$c -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

# The bootc appliance image (needs podman, docker or buildah and the base image's registry);
# IMAGE_ARGS passes options, e.g. IMAGE_ARGS="--base ghcr.io/ublue-os/bazzite-nvidia:stable".
image:
	image/build.sh $(IMAGE_ARGS)

clean:
	$(CARGO) clean
