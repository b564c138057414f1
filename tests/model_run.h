// The harness of the model-based random tests (test_model.cpp: riffle::Stream;
// test_model_fifo.cpp: riffle::FifoQueue): the seeds to run, operations, shrinking a failing
// sequence, and the loop that runs every seed and reports a mismatch with its replay.
#ifndef RIFFLE_TESTS_MODEL_RUN_H_
#define RIFFLE_TESTS_MODEL_RUN_H_

#include <absl/status/status.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fmt/format.h"
#include "riffle/status.h"
#include "support/alloc_counter.h"

namespace riffle_test::model_run {

inline uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

// The seeds to run: [first, first + count). RIFFLE_MODEL_SEED runs one seed;
// RIFFLE_MODEL_FIRST_SEED moves the range (to explore seeds no earlier run tried).
inline std::pair<uint64_t, uint64_t> SeedRange() {
  if (std::getenv("RIFFLE_MODEL_SEED") != nullptr) return {EnvOr("RIFFLE_MODEL_SEED", 1), 1};
  return {EnvOr("RIFFLE_MODEL_FIRST_SEED", 1),
          EnvOr("RIFFLE_MODEL_SEEDS", 5000 / riffle_test::StressDivisor())};
}

// An operation: a kind and four numbers that choose its arguments when it runs (indexes
// are taken modulo what exists then), so that any subsequence is still a valid test.
template <class Kind>
struct Op {
  Kind kind;
  uint64_t a = 0, b = 0, c = 0, d = 0;
};

// Drops operations while `fails` still fails (chunks of halving size, then one by one).
template <class O>
std::vector<O> Shrink(std::vector<O> ops, const std::function<bool(const std::vector<O>&)>& fails) {
  for (size_t chunk = std::max<size_t>(1, ops.size() / 2);; chunk /= 2) {
    for (bool removed = true; removed;) {
      removed = false;
      for (size_t i = 0; i + chunk <= ops.size();) {
        std::vector<O> trial(ops);
        trial.erase(trial.begin() + static_cast<std::ptrdiff_t>(i),
                    trial.begin() + static_cast<std::ptrdiff_t>(i + chunk));
        if (fails(trial)) {
          ops = std::move(trial);
          removed = true;
        } else {
          i += chunk;
        }
      }
    }
    if (chunk == 1) return ops;
  }
}

// A string for a transcript: long ones cut.
inline std::string Short(std::string_view s) {
  return s.size() <= 24 ? std::string(s)
                        : fmt::format("{}...({} bytes)", s.substr(0, 12), s.size());
}

inline std::string Name(const absl::Status& s) {
  return s.ok() ? "OK" : std::string(riffle::ErrorName(s));
}
inline std::string Name(std::string_view model_error) {
  return model_error.empty() ? "OK" : std::string(model_error);
}

// Runs every seed; on a mismatch, shrinks the seed's operations and fails with both.
// `describe` prints a configuration for the report.
template <class Config, class O, class RunT>
void RunSeeds(const char* what, Config (*config_for)(uint64_t), std::vector<O> (*ops_for)(uint64_t),
              std::string (*describe)(const Config&)) {
  const auto [first, count] = SeedRange();
  size_t operations = 0;
  for (uint64_t seed = first; seed < first + count; ++seed) {
    const Config config = config_for(seed);
    const std::vector<O> ops = ops_for(seed);
    std::string failure = RunT(config).Run(ops, &operations);
    if (failure.empty()) continue;
    size_t ignored = 0;
    const std::vector<O> shrunk = Shrink<O>(ops, [&](const std::vector<O>& trial) {
      return !RunT(config).Run(trial, &ignored).empty();
    });
    std::vector<std::string> transcript;
    const std::string shrunk_failure = RunT(config).Run(shrunk, &ignored, &transcript);
    std::string listing;
    for (const std::string& call : transcript) listing += "  " + call + "\n";
    FAIL(
        fmt::format("{} model mismatch with seed {} ({}; replay: RIFFLE_MODEL_SEED={}):\n  {}\n"
                    "shrunk to {} of {} operations, which fail with:\n  {}\n{}",
                    what, seed, describe(config), seed, failure, shrunk.size(), ops.size(),
                    shrunk_failure, listing));
  }
  // Every seed ran operations (a generator that produced none would pass vacuously).
  CHECK(operations >= count);
  std::printf("test_model: %s: %llu seeds, %zu operations\n", what,
              static_cast<unsigned long long>(count), operations);
}

}  // namespace riffle_test::model_run

#endif  // RIFFLE_TESTS_MODEL_RUN_H_
