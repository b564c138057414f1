// FaultPlan: matching, counting and firing rules (the contract is in fault_plan.h).
#include "riffle/fault_plan.h"

#include <algorithm>

#include "fmt/format.h"
#include "riffle/status.h"

namespace riffle {
namespace {

// SplitMix64: a well-mixed 64-bit value of (seed, call number), so that a fraction picks
// the same calls on every run whatever the seed's bit pattern.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

bool IsPerEntryError(std::string_view error) {
  return error == kInternalFailure || error == kProvisionedThroughputExceededException;
}

// Whether the rule fires on its `matched`-th matching call (1-based).
bool Fires(const FaultRule& rule, uint64_t matched) {
  switch (rule.trigger) {
    case FaultTrigger::kNextCalls:
      return matched <= rule.count;
    case FaultTrigger::kEveryKth:
      return rule.count != 0 && matched % rule.count == 0;
    case FaultTrigger::kFraction: {
      const double u = static_cast<double>(Mix(rule.seed ^ Mix(matched)) >> 11) * 0x1.0p-53;
      return u < rule.fraction;
    }
  }
  return false;
}

}  // namespace

FaultRule FaultRule::FailNext(std::string_view operation, uint64_t calls, std::string_view error) {
  FaultRule r;
  r.operation = std::string(operation);
  r.trigger = FaultTrigger::kNextCalls;
  r.count = calls;
  r.error = std::string(error);
  return r;
}

FaultRule FaultRule::Every(std::string_view operation, uint64_t k, std::string_view error) {
  FaultRule r;
  r.operation = std::string(operation);
  r.trigger = FaultTrigger::kEveryKth;
  r.count = k;
  r.error = std::string(error);
  return r;
}

FaultRule FaultRule::Fraction(std::string_view operation, double fraction, uint64_t seed,
                              std::string_view error) {
  FaultRule r;
  r.operation = std::string(operation);
  r.trigger = FaultTrigger::kFraction;
  r.fraction = fraction;
  r.seed = seed;
  r.error = std::string(error);
  return r;
}

FaultRule FaultRule::Delay(std::string_view operation, absl::Duration latency) {
  FaultRule r;
  r.operation = std::string(operation);
  r.trigger = FaultTrigger::kEveryKth;
  r.count = 1;
  r.latency = latency;
  return r;
}

FaultRule& FaultRule::OnResource(std::string_view name_or_arn) {
  resource = std::string(name_or_arn);
  return *this;
}
FaultRule& FaultRule::OnShard(std::string_view id) {
  shard_id = std::string(id);
  return *this;
}
FaultRule& FaultRule::WithMessage(std::string_view text) {
  message = std::string(text);
  return *this;
}
FaultRule& FaultRule::WithLatency(absl::Duration d) {
  latency = d;
  return *this;
}

absl::Status FaultPlan::Validate(const FaultRule& rule) {
  if (rule.operation.empty()) {
    return InvalidArgumentError("FaultRule.operation is empty; name an operation, or \"*\".");
  }
  switch (rule.trigger) {
    case FaultTrigger::kNextCalls:
      if (rule.count == 0) {
        return InvalidArgumentError(
            "FaultRule.count is 0; FailNext(n) needs n >= 1 (a rule for no call never fires).");
      }
      break;
    case FaultTrigger::kEveryKth:
      if (rule.count == 0) {
        return InvalidArgumentError(
            "FaultRule.count is 0; Every(k) needs k >= 1 (the k-th, 2k-th, ... call).");
      }
      break;
    case FaultTrigger::kFraction:
      if (!(rule.fraction >= 0 && rule.fraction <= 1)) {
        return InvalidArgumentError(
            fmt::format("FaultRule.fraction is {}; it must be between 0 and 1.", rule.fraction));
      }
      break;
    default:
      return InvalidArgumentError(
          fmt::format("FaultRule.trigger is {}; it must be kNextCalls, kEveryKth or kFraction.",
                      static_cast<int>(rule.trigger)));
  }
  if (rule.operation == "PutRecords" && !rule.shard_id.empty() && !IsPerEntryError(rule.error)) {
    // Such a rule fails or delays the whole request, which names no one shard.
    return InvalidArgumentError(fmt::format(
        "FaultRule.shard_id is {} on a PutRecords rule whose error is not a per-entry code "
        "(InternalFailure, ProvisionedThroughputExceededException): it would never fire.",
        rule.shard_id));
  }
  if (rule.latency < absl::ZeroDuration()) {
    return InvalidArgumentError(fmt::format("FaultRule.latency is {}; it must not be negative.",
                                            absl::FormatDuration(rule.latency)));
  }
  return absl::OkStatus();
}

int FaultPlan::Add(FaultRule rule) {
  if (!Validate(rule).ok()) return 0;
  std::lock_guard<std::mutex> lock(mu_);
  const int id = next_id_++;
  rules_.push_back(Entry{id, std::move(rule)});
  active_.store(true, std::memory_order_relaxed);
  return id;
}

bool FaultPlan::Remove(int id) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto n = std::erase_if(rules_, [id](const Entry& e) { return e.id == id; });
  active_.store(!rules_.empty(), std::memory_order_relaxed);
  return n != 0;
}

void FaultPlan::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  rules_.clear();
  active_.store(false, std::memory_order_relaxed);
}

FaultCounters FaultPlan::Counters() const {
  std::lock_guard<std::mutex> lock(mu_);
  FaultCounters c;
  c.injected = injected_;
  c.delayed = delayed_;
  c.latency_added = latency_added_;
  for (const Entry& e : rules_) {
    c.rules.push_back(FaultRuleCounters{e.id, e.rule.operation, e.matched, e.injected, e.delayed});
  }
  return c;
}

uint64_t FaultPlan::Injected(std::string_view operation) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [op, n] : injected_by_op_) {
    if (op == operation) return n;
  }
  return 0;
}

std::optional<FaultInjection> FaultPlan::Evaluate(std::string_view operation, std::string_view name,
                                                  std::string_view arn, std::string_view shard_id,
                                                  FaultScope scope) {
  if (!active()) return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  std::optional<FaultInjection> out;
  for (Entry& e : rules_) {
    const FaultRule& r = e.rule;
    if (r.operation != "*" && r.operation != operation) continue;
    // Inside PutRecords, the rules with a per-entry code count and fire per entry.
    const bool per_entry = operation == "PutRecords" && IsPerEntryError(r.error);
    if (per_entry != (scope == FaultScope::kEntry)) continue;
    if (!r.resource.empty() && r.resource != name && r.resource != arn) continue;
    if (!r.shard_id.empty() && r.shard_id != shard_id) continue;
    // Every matching rule counts the call; the latencies of the rules that fire add up,
    // and the first of them with an error decides the error.
    ++e.matched;
    if (!Fires(r, e.matched)) continue;
    const bool has_error = !r.error.empty() && (!out || out->error.empty());
    if (r.latency <= absl::ZeroDuration() && !has_error) continue;
    if (!out) out.emplace();
    if (r.latency > absl::ZeroDuration()) {
      out->latency += r.latency;
      ++e.delayed;
      ++delayed_;
      latency_added_ += r.latency;
    }
    if (has_error) {
      out->error = r.error;
      out->message = r.message;
      ++e.injected;
      ++injected_;
      auto it = std::find_if(injected_by_op_.begin(), injected_by_op_.end(),
                             [&](const auto& p) { return p.first == operation; });
      if (it == injected_by_op_.end()) {
        injected_by_op_.emplace_back(std::string(operation), 1);
      } else {
        ++it->second;
      }
    }
  }
  return out;
}

}  // namespace riffle
