// riffle::Account: an AWS account in process, the test double for code written for the
// services. It holds a region, an account id, one Clock, one fault plan and one switch for
// the services' limits, and serves each service's API by name and ARN, as the service
// does: kinesis() (streams, shards, records, consumers), firehose() (delivery streams),
// s3() (the buckets they deliver into) and sqs() (FIFO queues by URL), all on the same
// clock, fault plan and switch.
//
//   riffle::ManualClock clock;
//   auto account = riffle::Account::Create({.clock = &clock, .enforce_limits = true}).value();
//   riffle::Kinesis& kinesis = account->kinesis();
//   (void)kinesis.CreateStream({.stream_name = "orders", .shard_count = 2});
//   auto put = kinesis.PutRecord({.stream_name = "orders", .partition_key = "k", .data = "v"});
//   if (riffle::IsProvisionedThroughputExceededException(put.status())) BackOff();
//
// Limits. Off by default, for in-process speed: the account then enforces only the quotas
// of AccountQuotas. With `enforce_limits` on, it enforces what the services enforce:
// per-shard write and read throughput, the push rate of enhanced fan-out, ON_DEMAND
// capacity, the control-plane call rates and the rolling 24-hour quotas. Every limit is a
// token bucket or a window on the account's clock, so a test on a ManualClock sees the same
// throttles on every run. docs/aws-account.md lists each value with its source.
//
// Thread safety: every method may be called from any thread. Destroying the account while
// other threads call it is undefined; subscriptions may outlive it (they end).
#ifndef RIFFLE_ACCOUNT_H_
#define RIFFLE_ACCOUNT_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "riffle/clock.h"
#include "riffle/fault_plan.h"
#include "riffle/firehose.h"
#include "riffle/kinesis.h"
#include "riffle/s3.h"
#include "riffle/sqs.h"
#include "riffle/stream.h"

namespace riffle {

// Resource quotas, enforced whether or not `enforce_limits` is on (LimitExceededException).
struct AccountQuotas {
  // Open shards of all streams. 0: the region's default (20,000 in us-east-1, us-west-2 and
  // eu-west-1; 1,000 elsewhere, the lower of the service's two figures).
  int shard_limit = 0;
  // Streams in ON_DEMAND mode (the service: 50).
  int on_demand_stream_limit = 50;
  // Open shards of one stream (the service: 10,000).
  int shards_per_stream = 10000;
  // Tags on one stream (the service: 50).
  int tags_per_stream = 50;
};

struct AccountOptions {
  std::string region = "us-east-1";         // 1..64 characters of [a-z0-9-]
  std::string account_id = "000000000000";  // 12 digits
  // Not owned; nullptr means SystemClock::Default(). Must outlive the account. Every stream
  // of the account runs on it.
  Clock* clock = nullptr;
  // The switch for the services' limits (see above). Default off.
  bool enforce_limits = false;
  AccountQuotas quotas;
  // Emulated durations on the clock: a new stream is CREATING (reads and writes fail with
  // ResourceNotFoundException, as on the service), a deleted one DELETING (reads and writes
  // still work), a resharded, re-encrypted or mode-switched one UPDATING (no second change;
  // writes keep the previous encryption until the stream is ACTIVE again, as on the
  // service). Each 0 .. 365 days; default zero: the change is done when the call returns.
  absl::Duration create_duration = absl::ZeroDuration();
  absl::Duration delete_duration = absl::ZeroDuration();
  absl::Duration update_duration = absl::ZeroDuration();
  // What every stream the account creates starts from: ring size, routing, record size,
  // overflow policy, ... (CreateStreamInput::stream_options overrides it per stream). The
  // name, shard count, clock, region, account id and the limits are the account's.
  StreamOptions stream_defaults;
};

namespace detail {
struct AccountCore;
}  // namespace detail

class Account {
 public:
  // InvalidArgumentException naming the option and its rule.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Account>> Create(AccountOptions options = {});
  ~Account();
  Account(const Account&) = delete;
  Account& operator=(const Account&) = delete;

  const std::string& region() const;
  const std::string& account_id() const;
  Clock& clock() const;
  bool limits_enforced() const;
  // The region's shard quota in force (AccountQuotas::shard_limit resolved).
  int shard_limit() const;

  // The Kinesis Data Streams API of this account.
  Kinesis& kinesis() { return *kinesis_; }
  // The Amazon Data Firehose API of this account (delivery streams into its buckets).
  Firehose& firehose() { return *firehose_; }
  // The account's S3 buckets (what a delivery stream writes, read back by a test).
  S3& s3() { return *s3_; }
  // The SQS API of this account (FIFO queues; riffle/sqs.h).
  Sqs& sqs() { return *sqs_; }
  // The faults injected into every service of this account.
  FaultPlan& faults();

  // arn:aws:kinesis:<region>:<account id>:stream/<name>
  std::string StreamArn(std::string_view stream_name) const;

 private:
  explicit Account(std::unique_ptr<detail::AccountCore> core);

  std::unique_ptr<detail::AccountCore> core_;
  std::unique_ptr<Kinesis> kinesis_;
  std::unique_ptr<S3> s3_;
  std::unique_ptr<Firehose> firehose_;
  std::unique_ptr<Sqs> sqs_;
};

}  // namespace riffle

#endif  // RIFFLE_ACCOUNT_H_
