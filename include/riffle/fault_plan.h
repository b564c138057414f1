// FaultPlan: errors and latency an Account injects into its operations on purpose, so that
// a test can prove a caller survives what the services do to it (throttles, internal
// failures, outages, slow calls). One plan serves every service of the account.
//
//   auto& faults = account->faults();
//   faults.Add(riffle::FaultRule::FailNext("PutRecord", 3, riffle::kServiceUnavailable));
//   faults.Add(riffle::FaultRule::Every("GetRecords", 4,
//                                       riffle::kProvisionedThroughputExceededException)
//                  .OnResource("orders"));
//   faults.Add(riffle::FaultRule::Fraction("PutRecords", 0.1, /*seed=*/7,
//                                          riffle::kInternalFailure));
//   faults.Add(riffle::FaultRule::Delay("DescribeStream", absl::Milliseconds(200)));
//
// A rule matches calls of one operation (its AWS name; "*" for any), optionally only on one
// resource (a stream's name or ARN) and one shard. Every matching call is counted by the
// rule, and the rule fires on:
//   FailNext(n)      the next n matching calls;
//   Every(k)         every k-th matching call (the k-th, 2k-th, ...);
//   Fraction(p, s)   a fraction p of matching calls, chosen by a hash of (seed s, call
//                    number): the same calls on every run;
//   Delay(d)         every matching call (latency only).
// The latencies of the rules that fire add up and pass first (a ManualClock advances by
// them; a real clock sleeps); then the first of them with an error, in the order added,
// fails the call before the operation runs: nothing changes.
//
// Inside PutRecords, a rule (for PutRecords, or "*") whose error is one of the per-entry
// codes (InternalFailure, ProvisionedThroughputExceededException) counts and fires per
// entry: a firing entry fails with that ErrorCode and is not written, the others are. A
// rule with any other error fails the whole request.
//
// Thread safety: every method may be called from any thread.
#ifndef RIFFLE_FAULT_PLAN_H_
#define RIFFLE_FAULT_PLAN_H_

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace riffle {

enum class FaultTrigger { kNextCalls, kEveryKth, kFraction };

struct FaultRule {
  std::string operation;  // "PutRecords", ...; "*" matches every operation
  std::string resource;   // a stream's name or ARN; empty: any
  std::string shard_id;   // empty: any shard
  FaultTrigger trigger = FaultTrigger::kNextCalls;
  uint64_t count = 1;   // kNextCalls: how many calls; kEveryKth: k (>= 1)
  double fraction = 0;  // kFraction: 0..1
  uint64_t seed = 0;    // kFraction
  std::string error;    // an error name (status.h); empty: latency only
  std::string message;  // empty: the service's message for `error`
  absl::Duration latency = absl::ZeroDuration();

  static FaultRule FailNext(std::string_view operation, uint64_t calls, std::string_view error);
  static FaultRule Every(std::string_view operation, uint64_t k, std::string_view error);
  static FaultRule Fraction(std::string_view operation, double fraction, uint64_t seed,
                            std::string_view error);
  static FaultRule Delay(std::string_view operation, absl::Duration latency);

  FaultRule& OnResource(std::string_view name_or_arn);
  FaultRule& OnShard(std::string_view shard_id);
  FaultRule& WithMessage(std::string_view text);
  FaultRule& WithLatency(absl::Duration d);
};

// What one rule has done so far.
struct FaultRuleCounters {
  int id = 0;
  std::string operation;
  uint64_t matched = 0;   // calls (PutRecords entries, for per-entry rules) it counted
  uint64_t injected = 0;  // calls it failed
  uint64_t delayed = 0;   // calls it delayed
};

struct FaultCounters {
  uint64_t injected = 0;  // errors injected, all rules (removed ones included)
  uint64_t delayed = 0;
  absl::Duration latency_added = absl::ZeroDuration();
  std::vector<FaultRuleCounters> rules;  // the rules still in the plan, in order
};

// One call's outcome, for the services that consult the plan.
struct FaultInjection {
  std::string error;    // empty: no error
  std::string message;  // empty: the service's message for `error`
  absl::Duration latency = absl::ZeroDuration();
};

// Which rules a call consults (see PutRecords above).
enum class FaultScope {
  kRequest,  // every rule but the per-entry ones of PutRecords
  kEntry,    // one PutRecords entry: the per-entry rules only
};

class FaultPlan {
 public:
  FaultPlan() = default;
  FaultPlan(const FaultPlan&) = delete;
  FaultPlan& operator=(const FaultPlan&) = delete;

  // Adds a rule after the others; returns its id (for Remove and the counters), from 1. A
  // rule Validate() refuses is not added (it would never fire, or fire at random): 0.
  int Add(FaultRule rule);
  // InvalidArgumentException naming the field: an empty operation, a trigger outside the
  // enum, Every(0), a fraction outside 0..1 (or NaN), a negative latency.
  static absl::Status Validate(const FaultRule& rule);
  // False when no rule has that id.
  bool Remove(int id);
  void Clear();
  FaultCounters Counters() const;
  // Errors injected into `operation` so far.
  uint64_t Injected(std::string_view operation) const;

  // True when the plan holds a rule (one relaxed load: the services' fast check).
  bool active() const { return active_.load(std::memory_order_relaxed); }

  // Counts one call (or one PutRecords entry) against the matching rules and says what to
  // inject; nullopt when nothing fires. `name` and `arn` identify the resource.
  std::optional<FaultInjection> Evaluate(std::string_view operation, std::string_view name,
                                         std::string_view arn, std::string_view shard_id,
                                         FaultScope scope);

 private:
  struct Entry {
    int id;
    FaultRule rule;
    uint64_t matched = 0;
    uint64_t injected = 0;
    uint64_t delayed = 0;
  };
  mutable std::mutex mu_;
  std::vector<Entry> rules_;  // guarded by mu_
  int next_id_ = 1;
  uint64_t injected_ = 0;
  uint64_t delayed_ = 0;
  absl::Duration latency_added_ = absl::ZeroDuration();
  std::vector<std::pair<std::string, uint64_t>> injected_by_op_;
  std::atomic<bool> active_{false};
};

}  // namespace riffle

#endif  // RIFFLE_FAULT_PLAN_H_
