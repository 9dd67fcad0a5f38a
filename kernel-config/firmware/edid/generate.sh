#!/usr/bin/env bash
# Regenerates strahl.bin, strahl's headless EDID, from its generator
# (crates/test/appliance/src/edid.rs). make test fails when the shipped file differs from the
# generator's output, and runs edid-decode --check on it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
cargo run -q -p strahl-appliance --bin strahl-edid -- kernel-config/firmware/edid/strahl.bin
echo "wrote kernel-config/firmware/edid/strahl.bin"
