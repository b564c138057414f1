#!/usr/bin/env bash
# riffle's entry point. On Debian 12 it installs whatever build dependency is missing
# (apt-get, as root or through sudo), configures and builds with CMake presets (which turn
# on the optional Kafka component, riffle::kafka), then runs:
#   ./run.sh demo [riffle-demo flags]    the demo pipeline (try --help)
#   ./run.sh test [PRESET]               the tests: release (default), debug, asan-ubsan, tsan
#   ./run.sh bench [benchmark flags]     the benchmarks, riffle beside its peers
set -euo pipefail
cd "$(dirname "$0")"

packages=(g++ cmake ninja-build pkg-config libabsl-dev libxxhash-dev libfmt-dev catch2
          libbenchmark-dev libboost-dev libconcurrentqueue-dev zlib1g-dev libsnappy-dev
          libssl-dev libprotozero-dev librdkafka-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "run.sh: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

build() {  # build PRESET
  cmake --preset "$1" >/dev/null
  cmake --build --preset "$1"
}

cmd="${1:-}"; shift || true
case "$cmd" in
  demo)
    echo "run.sh: building (release preset; the first build takes a few minutes)" >&2
    build release >/dev/null
    exec build/release/examples/riffle-demo "$@" ;;
  test)
    preset="${1:-release}"
    build "$preset"
    ctest --preset "$preset" ;;
  bench)
    echo "run.sh: building (release preset)" >&2
    build release >/dev/null
    exec build/release/benchmarks/riffle_bench "$@" ;;
  *)
    echo "usage: ./run.sh demo [flags] | test [release|debug|asan-ubsan|tsan] | bench [flags]" >&2
    exit 2 ;;
esac
