// Account: options, the shared core (faults, delays, control-plane call rates).
#include "riffle/account.h"

#include <algorithm>
#include <random>
#include <string_view>
#include <thread>
#include <utility>

#include "account/account_core.h"
#include "common/names.h"
#include "fmt/format.h"
#include "riffle/status.h"

namespace riffle {
namespace detail {

AccountCore::AccountCore(AccountOptions options_in, Clock& clock_in, int shard_limit_in,
                         uint64_t secret_in)
    : options(std::move(options_in)),
      clock(clock_in),
      limits(options.enforce_limits),
      shard_limit(shard_limit_in),
      secret(secret_in) {}

absl::Status AccountCore::Inject(std::string_view operation, std::string_view name,
                                 std::string_view arn, std::string_view shard_id,
                                 FaultScope scope) {
  std::optional<FaultInjection> f = faults.Evaluate(operation, name, arn, shard_id, scope);
  if (!f) return absl::OkStatus();
  if (f->latency > absl::ZeroDuration()) Delay(f->latency);
  if (f->error.empty()) return absl::OkStatus();
  const std::string message =
      f->message.empty() ? InjectedMessage(f->error, operation, name, account_id(), shard_id)
                         : f->message;
  return NamedError(f->error, message);
}

void AccountCore::Delay(absl::Duration d) {
  if (auto* manual = dynamic_cast<ManualClock*>(&clock)) {
    manual->Advance(d);
  } else {
    std::this_thread::sleep_for(absl::ToChronoNanoseconds(d));
  }
}

bool AccountCore::TakeCall(std::string_view operation, std::string_view scope, int per_second) {
  const int64_t now_ms = clock.NowMillis();
  std::string key = fmt::format("{}/{}", operation, scope);
  std::lock_guard<std::mutex> lock(rates_mu_);
  if (rates_.size() >= rates_prune_at_) {
    // A full bucket acts as a new one: dropping it changes no answer.
    absl::erase_if(rates_, [now_ms](auto& entry) { return entry.second.Full(now_ms); });
    rates_prune_at_ = std::max<std::size_t>(1024, 2 * rates_.size());
  }
  auto [it, added] = rates_.try_emplace(std::move(key));
  if (added) {
    it->second = TokenBucket(static_cast<uint64_t>(per_second), static_cast<uint64_t>(per_second));
  }
  return it->second.TryTake(1, now_ms);
}

std::string InjectedMessage(std::string_view error, std::string_view operation,
                            std::string_view name, std::string_view account_id,
                            std::string_view shard_id) {
  if (error == kInternalFailure) return "Internal Service Failure";
  if (error == kServiceUnavailable || error == kServiceUnavailableException) {
    return "Service Unavailable";
  }
  if (error == kProvisionedThroughputExceededException) {
    if (!shard_id.empty() && !name.empty()) {
      return fmt::format("Rate exceeded for shard {} in stream {} under account {}.", shard_id,
                         name, account_id);
    }
    if (!name.empty()) {
      return fmt::format("Rate exceeded for stream {} under account {}.", name, account_id);
    }
    return fmt::format("Rate exceeded for account {}.", account_id);
  }
  if (error == kLimitExceededException || error == kThrottlingException) {
    if (!name.empty()) {
      return fmt::format("Rate exceeded for stream {} under account {}.", name, account_id);
    }
    return fmt::format("Rate exceeded for {} under account {}.", operation, account_id);
  }
  if (error == kKMSThrottlingException) {
    return fmt::format(
        "The request was denied due to request throttling of the KMS key of stream {} under "
        "account {}.",
        name, account_id);
  }
  // S3's own texts (its error responses' list); the callers add BucketName and Key.
  if (error == kInternalError) return "We encountered an internal error. Please try again.";
  if (error == kSlowDown) return "Please reduce your request rate.";
  if (error == kNoSuchKey) return "The specified key does not exist.";
  if (error == kNoSuchBucket) return "The specified bucket does not exist";
  if (error == kResourceNotFoundException && !name.empty()) {
    return fmt::format("Stream {} under account {} not found.", name, account_id);
  }
  return fmt::format("{} injected into {} by the account's fault plan.", error, operation);
}

}  // namespace detail

namespace {

// The longest CREATING, DELETING or UPDATING state an account emulates.
constexpr absl::Duration kMaxStateDuration = absl::Hours(24 * 365);

bool IsValidRegion(std::string_view region) {
  return !region.empty() && region.size() <= 64 &&
         std::all_of(region.begin(), region.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
         });
}

uint64_t NewSecret() {
  std::random_device rd;
  return (uint64_t{rd()} << 32) ^ rd();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Account>> Account::Create(AccountOptions options) {
  if (!IsValidRegion(options.region)) {
    return InvalidArgumentError(fmt::format(
        "Region '{}' is invalid: it must be 1 to 64 characters of [a-z0-9-].", options.region));
  }
  if (options.account_id.size() != 12 ||
      !std::all_of(options.account_id.begin(), options.account_id.end(),
                   [](char c) { return c >= '0' && c <= '9'; })) {
    return InvalidArgumentError(
        fmt::format("AccountId '{}' is invalid: it must be 12 digits.", options.account_id));
  }
  const AccountQuotas& q = options.quotas;
  if (q.shard_limit < 0 || q.on_demand_stream_limit < 0 || q.shards_per_stream < 1 ||
      q.tags_per_stream < 0) {
    return InvalidArgumentError(
        "AccountQuotas must not be negative (and ShardsPerStream must be at least 1).");
  }
  const std::pair<std::string_view, absl::Duration> durations[] = {
      {"CreateDuration", options.create_duration},
      {"DeleteDuration", options.delete_duration},
      {"UpdateDuration", options.update_duration}};
  for (const auto& [name, d] : durations) {
    if (d < absl::ZeroDuration() || d > kMaxStateDuration) {
      return InvalidArgumentError(fmt::format("{} is {}; it must be between 0 and 365 days.", name,
                                              absl::FormatDuration(d)));
    }
  }
  int shard_limit = q.shard_limit;
  if (shard_limit == 0) {
    const bool large = options.region == "us-east-1" || options.region == "us-west-2" ||
                       options.region == "eu-west-1";
    shard_limit = large ? 20000 : 1000;
  }
  Clock& clock = options.clock != nullptr ? *options.clock : SystemClock::Default();
  auto core =
      std::make_unique<detail::AccountCore>(std::move(options), clock, shard_limit, NewSecret());
  return std::unique_ptr<Account>(new Account(std::move(core)));
}

Account::Account(std::unique_ptr<detail::AccountCore> core)
    : core_(std::move(core)),
      kinesis_(std::make_unique<Kinesis>(*core_)),
      s3_(std::make_unique<S3>(*core_)),
      firehose_(std::make_unique<Firehose>(*core_, *kinesis_, *s3_)),
      sqs_(std::make_unique<Sqs>(*core_)) {}

Account::~Account() {
  sqs_.reset();       // before the core it refers to
  firehose_.reset();  // delivers what it buffered into the buckets, reading the streams
  s3_.reset();
  kinesis_.reset();  // before the core it refers to
}

const std::string& Account::region() const { return core_->region(); }
const std::string& Account::account_id() const { return core_->account_id(); }
Clock& Account::clock() const { return core_->clock; }
bool Account::limits_enforced() const { return core_->limits; }
int Account::shard_limit() const { return core_->shard_limit; }
FaultPlan& Account::faults() { return core_->faults; }

std::string Account::StreamArn(std::string_view stream_name) const {
  return fmt::format("arn:{}:kinesis:{}:{}:stream/{}", detail::ArnPartition(core_->region()),
                     core_->region(), core_->account_id(), stream_name);
}

}  // namespace riffle
