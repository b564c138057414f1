#!/usr/bin/env bash
# riffle's entry point. On Debian 12 it installs whatever build dependency is missing
# (apt-get, as root or through sudo), configures and builds with CMake presets (which turn
# on the optional Kafka component, riffle::kafka), then runs:
#   ./run.sh demo [riffle-demo flags]    the demo pipeline (try --help)
#   ./run.sh test [PRESET]               the tests: release (default), debug, asan-ubsan, tsan
#   ./run.sh bench [benchmark flags]     the benchmarks, riffle beside its peers
#   ./run.sh fuzz [SECONDS]              every libFuzzer target for SECONDS (default 60) on a
#                                        scratch copy of its corpus; fails on any crash
#   ./run.sh model [--seeds N]           the model-based random test (release) with N seeds
set -euo pipefail
cd "$(dirname "$0")"

install_missing() {  # install_missing PACKAGE...
  local missing=() p sudo=""
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "run.sh: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

install_missing g++ cmake ninja-build pkg-config libabsl-dev libxxhash-dev libfmt-dev catch2 \
  libbenchmark-dev libboost-dev libconcurrentqueue-dev zlib1g-dev libsnappy-dev libssl-dev \
  libprotozero-dev librdkafka-dev

build() {  # build PRESET
  cmake --preset "$1" >/dev/null
  cmake --build --preset "$1"
}

# fuzz_one BINARY SECONDS SCRATCH: runs one fuzz target on a copy of its committed corpus
# (fuzz/corpus/<target>/ is never modified); leaves its log, its exit code and a summary
# line (executions, coverage) in SCRATCH/<target>/.
fuzz_one() {
  local bin="$1" seconds="$2" name dir rc=0
  name="$(basename "$bin")"
  dir="$3/$name"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  if [ -d "fuzz/corpus/$name" ]; then cp -r "fuzz/corpus/$name/." "$dir/corpus/"; fi
  # -malloc_limit_mb: one allocation above 512 MiB is a crash (a declared size trusted).
  "$bin" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2560 -malloc_limit_mb=512 \
    -print_final_stats=1 -artifact_prefix="$dir/artifacts/" "$dir/corpus" >"$dir/log" 2>&1 || rc=$?
  echo "$rc" >"$dir/rc"
  local last
  last="$(grep -E '^#[0-9]+' "$dir/log" | tail -1 || true)"
  printf '%-22s rc=%-3s %s\n' "$name" "$rc" "$last" >"$dir/summary"
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
  fuzz)
    seconds="${1:-60}"
    install_missing clang-14 libclang-rt-14-dev  # libFuzzer ships in libclang-rt-14-dev
    echo "run.sh: building the fuzz targets (fuzz preset, clang++-14)" >&2
    build fuzz >/dev/null
    scratch="build/fuzz/run"
    rm -rf "$scratch"
    mkdir -p "$scratch"
    # Two targets at a time: one per core of the 2-core CI machine.
    for bin in build/fuzz/fuzz/fuzz_*; do
      [ -f "$bin" ] && [ -x "$bin" ] || continue
      while (($(jobs -rp | wc -l) >= 2)); do wait -n || true; done
      echo "run.sh: fuzzing $(basename "$bin") for ${seconds} s" >&2
      fuzz_one "$bin" "$seconds" "$scratch" &
    done
    wait
    status=0
    for dir in "$scratch"/*/; do
      cat "$dir/summary"
      if [ "$(cat "$dir/rc")" != 0 ]; then
        status=1
        echo "---- $(basename "$dir") failed; its log ends with:" >&2
        tail -40 "$dir/log" >&2
        ls "$dir/artifacts" >&2
      fi
    done
    exit "$status" ;;
  model)
    seeds=""; first=""
    while (($#)); do
      case "$1" in
        --seeds) seeds="$2"; shift 2 ;;
        --seeds=*) seeds="${1#--seeds=}"; shift ;;
        --first-seed) first="$2"; shift 2 ;;
        --first-seed=*) first="${1#--first-seed=}"; shift ;;
        *) echo "usage: ./run.sh model [--seeds N] [--first-seed S]" >&2; exit 2 ;;
      esac
    done
    build release >/dev/null
    RIFFLE_MODEL_SEEDS="${seeds:-}" RIFFLE_MODEL_FIRST_SEED="${first:-}" \
      exec build/release/tests/test_model "[model]" ;;
  *)
    echo "usage: ./run.sh demo [flags] | test [release|debug|asan-ubsan|tsan] | bench [flags]" \
         "| fuzz [SECONDS] | model [--seeds N] [--first-seed S]" >&2
    exit 2 ;;
esac
