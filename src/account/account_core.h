// AccountCore: what every service of an Account shares: identity, the clock, the limits
// switch and quotas, the fault plan, the control-plane call rates and the key of pagination
// tokens. Services (Kinesis today; Firehose, S3 and SQS next) hold a reference to it.
//
// Thread safety: the options are immutable; the fault plan and the rate table guard
// themselves.
#ifndef RIFFLE_ACCOUNT_ACCOUNT_CORE_H_
#define RIFFLE_ACCOUNT_ACCOUNT_CORE_H_

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "riffle/account.h"
#include "riffle/detail/token_bucket.h"
#include "riffle/fault_plan.h"

namespace riffle::detail {

// A pagination token and a shard iterator live 300 seconds (5 minutes) on the service.
inline constexpr int64_t kNextTokenLifetimeMs = 300'000;

struct AccountCore {
  AccountCore(AccountOptions options, Clock& clock, int shard_limit, uint64_t secret);

  const AccountOptions options;
  Clock& clock;
  const bool limits;
  const int shard_limit;
  const uint64_t secret;
  FaultPlan faults;

  const std::string& account_id() const { return options.account_id; }
  const std::string& region() const { return options.region; }

  // Consults the fault plan for one call (or one PutRecords entry with kEntry): adds the
  // latency on the clock and returns the error to answer with (OK: go on). `name`, `arn`
  // and `shard_id` identify the resource, for matching and for the service's message.
  absl::Status Inject(std::string_view operation, std::string_view name, std::string_view arn,
                      std::string_view shard_id, FaultScope scope = FaultScope::kRequest);
  // Time passing inside a call: a ManualClock advances, a real clock sleeps.
  void Delay(absl::Duration d);

  // The control-plane call rates (limits on): takes one call of `operation` against
  // `scope`'s bucket of `per_second` calls (one second of burst). False: over the rate.
  bool TakeCall(std::string_view operation, std::string_view scope, int per_second);

 private:
  std::mutex rates_mu_;
  absl::flat_hash_map<std::string, TokenBucket> rates_;  // "<operation>/<scope>"
  // rates_ drops its full buckets when it reaches this size (then twice what is left), so
  // the scopes of deleted streams, consumers and queues do not stay for the account's life.
  std::size_t rates_prune_at_ = 1024;
};

// The message the service gives with `error` when a fault plan injects it without one.
std::string InjectedMessage(std::string_view error, std::string_view operation,
                            std::string_view name, std::string_view account_id,
                            std::string_view shard_id);

}  // namespace riffle::detail

#endif  // RIFFLE_ACCOUNT_ACCOUNT_CORE_H_
