// Kinesis: the stream-level control plane (create, delete, describe, list, limits, mode,
// retention).
#include <algorithm>

#include "account/kinesis_internal.h"
#include "fmt/format.h"
#include "riffle/detail/epoch.h"
#include "riffle/kinesis.h"
#include "riffle/status.h"
#include "stream/request_checks.h"
#include "stream/stream_errors.h"

namespace riffle {
namespace {

using detail::StreamAccess;
using detail::StreamEntry;
using detail::Violations;

constexpr int kOnDemandStartShards = 4;
constexpr int kMaxStreamsCreating = 5;
constexpr int kDefaultListLimit = 100;
constexpr int64_t kDayMs = 86'400'000;

// A map member as the service prints it: {key=value, ...}.
std::string RenderTags(std::span<const Tag> tags) {
  std::string out = "{";
  for (std::size_t i = 0; i < tags.size(); ++i) {
    fmt::format_to(std::back_inserter(out), "{}{}={}", i == 0 ? "" : ", ", tags[i].key,
                   tags[i].value);
  }
  return out + "}";
}

}  // namespace

namespace detail {

void CheckTagMap(std::span<const Tag> tags, std::size_t max_entries, Violations& v) {
  if (tags.size() > max_entries) {
    v.AddRendered("tags", RenderTags(tags),
                  fmt::format("Member must have length less than or equal to {}", max_entries));
  }
  const bool keys_ok = std::all_of(tags.begin(), tags.end(), [](const Tag& t) {
    return !t.key.empty() && Utf8Chars(t.key) <= 128;
  });
  if (!keys_ok) {
    v.AddRendered("tags", RenderTags(tags),
                  "Map keys must satisfy constraint: [Member must have length less than or equal "
                  "to 128, Member must have length greater than or equal to 1]");
  }
  const bool values_ok =
      std::all_of(tags.begin(), tags.end(), [](const Tag& t) { return Utf8Chars(t.value) <= 256; });
  if (!values_ok) {
    v.AddRendered("tags", RenderTags(tags),
                  "Map value must satisfy constraint: [Member must have length less than or "
                  "equal to 256, Member must have length greater than or equal to 0]");
  }
}

// Bytes of multi-byte UTF-8 count as letters. "White space" is the space alone: the
// service refuses a tab in a tag key or value as it refuses a newline (recorded by
// kinesalite's tests against it).
bool TagTextOk(std::string_view s, bool allow_colon) {
  return std::all_of(s.begin(), s.end(), [allow_colon](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == ' ' || c == '_' || c == '.' || c == '/' || c == '=' ||
           c == '+' || c == '-' || c == '%' || c == '@' || (allow_colon && c == ':');
  });
}

absl::Status InvalidTagCharacters(bool remove) {
  return InvalidArgumentError(
      remove ? "Some tags contain invalid characters. Valid characters: Unicode letters, digits, "
               "white space, _ . / = + - % @ :."
             : "Some tags contain invalid characters. Valid characters: Unicode letters, digits, "
               "white space, _ . / = + - % @.");
}

}  // namespace detail

Kinesis::Kinesis(detail::AccountCore& core)
    : core_(core), registry_(std::make_unique<detail::KinesisRegistry>()) {}

Kinesis::~Kinesis() = default;

Stream* Kinesis::FindStream(std::string_view name_or_arn) {
  detail::EpochGuard guard;
  StreamEntry* e = nullptr;
  const bool arn = name_or_arn.substr(0, 4) == "arn:";
  if (!detail::ResolveStream(core_, *registry_, arn ? std::string_view() : name_or_arn,
                             arn ? name_or_arn : std::string_view(), StreamAccess::kData, &e)
           .ok()) {
    return nullptr;
  }
  return e->stream.get();
}

std::shared_ptr<Stream> Kinesis::ShareStream(std::string_view name_or_arn) {
  detail::EpochGuard guard;
  StreamEntry* e = nullptr;
  const bool arn = name_or_arn.substr(0, 4) == "arn:";
  if (!detail::ResolveStream(core_, *registry_, arn ? std::string_view() : name_or_arn,
                             arn ? name_or_arn : std::string_view(), StreamAccess::kData, &e)
           .ok()) {
    return nullptr;
  }
  for (std::shared_ptr<StreamEntry>& entry : registry_->All()) {
    if (entry.get() == e) return std::shared_ptr<Stream>(entry, entry->stream.get());
  }
  return nullptr;
}

// ---- helpers of the control plane (REQUIRE the registry's mutex) ----

namespace {

// Finishes deletions whose emulated duration has passed.
void SweepDeleted(detail::KinesisRegistry& registry, int64_t now_ms) {
  for (const auto& e : registry.All()) {
    if (e->GoneAt(now_ms)) registry.Remove(*e);
  }
}

int OpenShards(const detail::KinesisRegistry& registry, int64_t now_ms) {
  int open = 0;
  for (const auto& e : registry.All()) {
    if (!e->GoneAt(now_ms)) open += e->stream->DescribeStreamSummary().open_shard_count;
  }
  return open;
}

int OnDemandStreams(const detail::KinesisRegistry& registry, int64_t now_ms) {
  int n = 0;
  for (const auto& e : registry.All()) {
    n += !e->GoneAt(now_ms) && e->mode.load(std::memory_order_relaxed) == StreamMode::kOnDemand;
  }
  return n;
}

}  // namespace

namespace detail {

absl::Status ShardQuotaError(const AccountCore& core, int current, int additional) {
  return LimitExceededError(fmt::format(
      "This request would exceed the shard limit for the account {} in {}. Current shard count "
      "for the account: {}. Limit: {}. Number of additional shards that would have resulted "
      "from this request: {}. Refer to the AWS Service Limits page "
      "(http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for current "
      "limits and how to request higher limits.",
      core.account_id(), core.region(), current, core.shard_limit, additional));
}

int AccountOpenShards(const KinesisRegistry& registry, int64_t now_ms) {
  return OpenShards(registry, now_ms);
}

}  // namespace detail

absl::Status Kinesis::CreateStream(const CreateStreamInput& in) {
  {
    Violations v;
    if (in.shard_count) v.Range("shardCount", *in.shard_count, 1, INT32_MAX);
    v.Name("streamName", in.stream_name);
    if (in.stream_mode_details) detail::CheckStreamMode(in.stream_mode_details->stream_mode, v);
    detail::CheckTagMap(in.tags, 200, v);
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  }
  const StreamMode mode =
      in.stream_mode_details ? in.stream_mode_details->stream_mode : StreamMode::kProvisioned;
  if (mode == StreamMode::kProvisioned && !in.shard_count) {
    return InvalidArgumentError("ShardCount is required for a stream in PROVISIONED mode.");
  }
  if (mode == StreamMode::kOnDemand && in.shard_count) {
    return InvalidArgumentError("ShardCount must not be given for a stream in ON_DEMAND mode.");
  }
  for (const Tag& t : in.tags) {
    if (!detail::TagTextOk(t.key, false) || !detail::TagTextOk(t.value, false)) {
      return detail::InvalidTagCharacters(false);
    }
  }
  if (absl::Status s = detail::Admit(core_, "CreateStream", nullptr, in.stream_name); !s.ok()) {
    return s;
  }
  const AccountQuotas& quotas = core_.options.quotas;
  const int shards = mode == StreamMode::kOnDemand ? kOnDemandStartShards : *in.shard_count;
  std::lock_guard<std::mutex> lock(registry_->mu());
  const int64_t now_ms = core_.clock.NowMillis();
  SweepDeleted(*registry_, now_ms);
  {
    detail::EpochGuard guard;
    if (registry_->FindByName(in.stream_name) != nullptr) {
      return ResourceInUseError(fmt::format("Stream {} under account {} already exists.",
                                            in.stream_name, core_.account_id()));
    }
  }
  const int open = OpenShards(*registry_, now_ms);
  if (shards > quotas.shards_per_stream || int64_t{open} + shards > core_.shard_limit) {
    return detail::ShardQuotaError(core_, open, shards);
  }
  if (mode == StreamMode::kOnDemand &&
      OnDemandStreams(*registry_, now_ms) >= quotas.on_demand_stream_limit) {
    return LimitExceededError(fmt::format(
        "This request would exceed the on-demand stream limit of {} for the account {} in {}.",
        quotas.on_demand_stream_limit, core_.account_id(), core_.region()));
  }
  if (core_.limits) {
    // Streams being created or deleted count alike (the service's message says so).
    int busy = 0;
    for (const auto& e : registry_->All()) {
      const bool deleting =
          e->deleted_at_ms.load(std::memory_order_acquire) != INT64_MAX && !e->GoneAt(now_ms);
      busy += now_ms < e->active_at_ms || deleting ? 1 : 0;
    }
    if (busy >= kMaxStreamsCreating) {
      return LimitExceededError(
          fmt::format("This request would have exceed the limit on the number of streams that "
                      "can simultaneously be in CREATING or DELETING for the account {}. Limit: "
                      "{}.",
                      core_.account_id(), kMaxStreamsCreating));
    }
  }
  if (static_cast<int>(in.tags.size()) > quotas.tags_per_stream) {
    return InvalidArgumentError(fmt::format(
        "Failed to create stream {} under account {} because a given stream cannot have more "
        "than {} tags associated with it.",
        in.stream_name, core_.account_id(), quotas.tags_per_stream));
  }
  StreamOptions o =
      in.stream_options != nullptr ? *in.stream_options : core_.options.stream_defaults;
  o.stream_name = std::string(in.stream_name);
  o.shard_count = shards;
  o.shard_limit = quotas.shards_per_stream;
  o.clock = &core_.clock;
  o.region = core_.region();
  o.account_id = core_.account_id();
  o.reshard_duration = core_.options.update_duration;
  if (core_.limits) {
    // The service's per-shard throughput (docs/aws-account.md).
    o.read_budget = StreamOptions::ReadBudget{5, uint64_t{2} << 20};
    o.write_limit = StreamOptions::WriteLimit{uint64_t{1} << 20, 1000};
  } else {
    o.read_budget.reset();
    o.write_limit.reset();
  }
  absl::StatusOr<std::unique_ptr<Stream>> stream = Stream::Create(std::move(o));
  if (!stream.ok()) return stream.status();
  const int64_t active_at = core_.options.create_duration > absl::ZeroDuration()
                                ? detail::AddMillis(now_ms, core_.options.create_duration)
                                : INT64_MIN;
  auto entry = std::make_shared<StreamEntry>(*std::move(stream), mode, active_at);
  for (const Tag& t : in.tags) entry->tags[t.key] = t.value;
  registry_->Add(std::move(entry));
  return absl::OkStatus();
}

absl::Status Kinesis::DeleteStream(const DeleteStreamInput& in) {
  absl::Status result = DeleteStreamLocked(in);
  // A stream removed now is freed here, once no other call is inside it (its subscriptions
  // then end with kStreamDeleted).
  detail::CollectRetired();
  return result;
}

absl::Status Kinesis::DeleteStreamLocked(const DeleteStreamInput& in) {
  if (absl::Status s = detail::AdmitBeforeLock(core_, *registry_, "DeleteStream", in.stream_name,
                                               in.stream_arn, StreamAccess::kDescribe);
      !s.ok()) {
    return s;
  }
  std::lock_guard<std::mutex> lock(registry_->mu());
  detail::EpochGuard guard;
  StreamEntry* e = nullptr;
  if (absl::Status s = detail::ResolveStream(core_, *registry_, in.stream_name, in.stream_arn,
                                             StreamAccess::kDescribe, &e);
      !s.ok()) {
    return s;
  }
  if (e->deleted_at_ms.load(std::memory_order_acquire) != INT64_MAX) return absl::OkStatus();
  // As the service: a stream is deleted once it is ACTIVE (or UPDATING), not while CREATING.
  if (core_.clock.NowMillis() < e->active_at_ms) {
    return detail::NotActive(e->name, core_.account_id(), StreamStatus::kCreating);
  }
  const std::vector<ConsumerDescription> consumers = e->stream->ListStreamConsumers();
  if (!consumers.empty() && !in.enforce_consumer_deletion.value_or(false)) {
    return ResourceInUseError(fmt::format(
        "DeleteStream can't delete {} because there are consumers associated with this data "
        "stream. To delete {} anyway, set the EnforceConsumerDeletion parameter to true to force "
        "the deletion of all the consumers that are associated with it.",
        e->stream->arn(), e->name));
  }
  for (const ConsumerDescription& c : consumers) {
    (void)e->stream->DeregisterStreamConsumer(c.consumer_arn);
  }
  const absl::Duration d = core_.options.delete_duration;
  if (d <= absl::ZeroDuration()) {
    registry_->Remove(*e);
    return absl::OkStatus();
  }
  e->deleted_at_ms.store(detail::AddMillis(core_.clock.NowMillis(), d), std::memory_order_release);
  e->timed.store(true, std::memory_order_release);
  return absl::OkStatus();
}

absl::StatusOr<DescribeStreamOutput> Kinesis::DescribeStream(const DescribeStreamInput& in) {
  {
    Violations v;
    if (in.limit) v.Range("limit", *in.limit, 1, 10000);
    if (!in.exclusive_start_shard_id.empty())
      v.Name("exclusiveStartShardId", in.exclusive_start_shard_id);
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  }
  detail::EpochGuard guard;
  StreamEntry* e = nullptr;
  if (absl::Status s = detail::ResolveAndAdmit(core_, *registry_, "DescribeStream", in.stream_name,
                                               in.stream_arn, StreamAccess::kDescribe, &e);
      !s.ok()) {
    return s;
  }
  const int64_t now_ms = core_.clock.NowMillis();
  const StreamDescriptionSummary summary = e->stream->DescribeStreamSummary();
  DescribeStreamOutput out;
  StreamDescription& d = out.stream_description;
  d.stream_name = e->name;
  d.stream_arn = e->arn;
  d.stream_status = detail::StatusOf(*e, now_ms);
  d.stream_mode_details.stream_mode = e->mode.load(std::memory_order_relaxed);
  d.retention_period_hours = summary.retention_period_hours;
  d.stream_creation_timestamp = summary.stream_creation_timestamp;
  {
    // The type and the key change together under the lock.
    std::lock_guard<std::mutex> lock(e->mu);
    d.encryption_type = e->encryption.load(std::memory_order_relaxed);
    d.key_id = e->key_id;
    d.enhanced_monitoring.push_back(EnhancedMetrics{e->metrics});
  }
  if (d.stream_status == StreamStatus::kCreating) return out;  // no shards yet, as the service
  absl::StatusOr<std::vector<Shard>> shards = e->stream->ListShards();
  if (!shards.ok()) return shards.status();
  uint64_t after = 0;
  bool has_after = false;
  if (!in.exclusive_start_shard_id.empty()) {
    if (std::optional<uint64_t> i = detail::ResolveShardId(in.exclusive_start_shard_id)) {
      after = *i;
      has_after = true;
    }
  }
  const std::size_t limit = static_cast<std::size_t>(std::min(in.limit.value_or(100), 100));
  for (Shard& s : *shards) {
    if (has_after && *ParseShardId(s.shard_id) <= after) continue;
    if (d.shards.size() == limit) {
      d.has_more_shards = true;
      break;
    }
    d.shards.push_back(std::move(s));
  }
  return out;
}

absl::StatusOr<DescribeStreamSummaryOutput> Kinesis::DescribeStreamSummary(
    const DescribeStreamSummaryInput& in) {
  detail::EpochGuard guard;
  StreamEntry* e = nullptr;
  if (absl::Status s =
          detail::ResolveAndAdmit(core_, *registry_, "DescribeStreamSummary", in.stream_name,
                                  in.stream_arn, StreamAccess::kDescribe, &e);
      !s.ok()) {
    return s;
  }
  DescribeStreamSummaryOutput out;
  StreamDescriptionSummary& d = out.stream_description_summary;
  d = e->stream->DescribeStreamSummary();
  d.stream_status = detail::StatusOf(*e, core_.clock.NowMillis());
  d.stream_mode = e->mode.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(e->mu);  // the encryption type and key change together
  d.encryption_type = e->encryption.load(std::memory_order_relaxed);
  d.key_id = e->key_id;
  d.enhanced_monitoring = e->metrics;
  return out;
}

absl::StatusOr<ListStreamsOutput> Kinesis::ListStreams(const ListStreamsInput& in) {
  {
    Violations v;
    if (in.limit) v.Range("limit", *in.limit, 1, 10000);
    if (!in.exclusive_start_stream_name.empty()) {
      v.Name("exclusiveStartStreamName", in.exclusive_start_stream_name);
    }
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  }
  if (!in.next_token.empty() && !in.exclusive_start_stream_name.empty()) {
    return InvalidArgumentError(
        "NextToken and ExclusiveStartStreamName cannot be provided together.");
  }
  const int64_t now_ms = core_.clock.NowMillis();
  std::string after(in.exclusive_start_stream_name);
  if (!in.next_token.empty()) {
    absl::StatusOr<detail::PageToken> t =
        detail::DecodePageToken(in.next_token, 'N', core_.secret, now_ms);
    if (!t.ok()) return t.status();
    after = t->name;
  }
  if (absl::Status s = detail::Admit(core_, "ListStreams", nullptr); !s.ok()) return s;
  const std::size_t limit =
      static_cast<std::size_t>(std::min(in.limit.value_or(kDefaultListLimit), kDefaultListLimit));
  ListStreamsOutput out;
  for (const auto& e : registry_->All()) {
    if (!after.empty() && e->name <= after) continue;
    if (e->GoneAt(now_ms)) continue;
    if (out.stream_names.size() == limit) {
      out.has_more_streams = true;
      break;
    }
    out.stream_names.push_back(e->name);
    out.stream_summaries.push_back(
        StreamSummary{e->name, e->arn, detail::StatusOf(*e, now_ms),
                      StreamModeDetails{e->mode.load(std::memory_order_relaxed)},
                      e->stream->DescribeStreamSummary().stream_creation_timestamp});
  }
  if (out.has_more_streams) {
    detail::PageToken t;
    t.kind = 'N';
    t.issued_ms = now_ms;
    t.name = out.stream_names.back();
    out.next_token = detail::EncodePageToken(t, core_.secret);
  }
  return out;
}

absl::StatusOr<DescribeLimitsOutput> Kinesis::DescribeLimits() {
  if (absl::Status s = detail::Admit(core_, "DescribeLimits", nullptr); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(registry_->mu());
  const int64_t now_ms = core_.clock.NowMillis();
  SweepDeleted(*registry_, now_ms);
  DescribeLimitsOutput out;
  out.shard_limit = core_.shard_limit;
  out.open_shard_count = OpenShards(*registry_, now_ms);
  out.on_demand_stream_count = OnDemandStreams(*registry_, now_ms);
  out.on_demand_stream_count_limit = core_.options.quotas.on_demand_stream_limit;
  return out;
}

absl::Status Kinesis::UpdateStreamMode(const UpdateStreamModeInput& in) {
  {
    Violations v;
    if (in.stream_arn.empty()) v.Null("streamARN");
    detail::CheckStreamMode(in.stream_mode_details.stream_mode, v);
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  }
  if (absl::Status s = detail::AdmitBeforeLock(core_, *registry_, "UpdateStreamMode", {},
                                               in.stream_arn, StreamAccess::kModify);
      !s.ok()) {
    return s;
  }
  std::lock_guard<std::mutex> lock(registry_->mu());
  detail::EpochGuard guard;
  StreamEntry* e = nullptr;
  if (absl::Status s =
          detail::ResolveStream(core_, *registry_, {}, in.stream_arn, StreamAccess::kModify, &e);
      !s.ok()) {
    return s;
  }
  const int64_t now_ms = core_.clock.NowMillis();
  const StreamStatus status = detail::StatusOf(*e, now_ms);
  if (status != StreamStatus::kActive)
    return detail::NotActive(e->name, core_.account_id(), status);
  const StreamMode to = in.stream_mode_details.stream_mode;
  if (e->mode.load(std::memory_order_relaxed) == to) {
    return InvalidArgumentError(fmt::format("Stream {} under account {} is already in {} mode.",
                                            e->name, core_.account_id(), StreamModeName(to)));
  }
  if (to == StreamMode::kOnDemand &&
      OnDemandStreams(*registry_, now_ms) >= core_.options.quotas.on_demand_stream_limit) {
    return LimitExceededError(fmt::format(
        "This request would exceed the on-demand stream limit of {} for the account {} in {}.",
        core_.options.quotas.on_demand_stream_limit, core_.account_id(), core_.region()));
  }
  std::lock_guard<std::mutex> entry_lock(e->mu);
  if (core_.limits && !e->mode_switches.TryAdd(now_ms, kDayMs, 2)) {
    return LimitExceededError(fmt::format(
        "Stream {} under account {} has switched its capacity mode twice in the last 24 hours, "
        "the most allowed.",
        e->name, core_.account_id()));
  }
  e->mode.store(to, std::memory_order_relaxed);
  e->updating_until_ms.store(detail::AddMillis(now_ms, core_.options.update_duration),
                             std::memory_order_release);
  return absl::OkStatus();
}

absl::Status Kinesis::IncreaseStreamRetentionPeriod(const IncreaseStreamRetentionPeriodInput& in) {
  if (absl::Status s = detail::CheckRetentionHours(in.retention_period_hours); !s.ok()) {
    return s;
  }
  detail::EpochGuard guard;
  StreamEntry* e = nullptr;
  if (absl::Status s =
          detail::ResolveAndAdmit(core_, *registry_, "IncreaseStreamRetentionPeriod",
                                  in.stream_name, in.stream_arn, StreamAccess::kModify, &e);
      !s.ok()) {
    return s;
  }
  return e->stream->IncreaseStreamRetentionPeriod(in.retention_period_hours);
}

absl::Status Kinesis::DecreaseStreamRetentionPeriod(const DecreaseStreamRetentionPeriodInput& in) {
  if (absl::Status s = detail::CheckRetentionHours(in.retention_period_hours); !s.ok()) {
    return s;
  }
  detail::EpochGuard guard;
  StreamEntry* e = nullptr;
  if (absl::Status s =
          detail::ResolveAndAdmit(core_, *registry_, "DecreaseStreamRetentionPeriod",
                                  in.stream_name, in.stream_arn, StreamAccess::kModify, &e);
      !s.ok()) {
    return s;
  }
  return e->stream->DecreaseStreamRetentionPeriod(in.retention_period_hours);
}

}  // namespace riffle
