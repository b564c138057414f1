// Kinesis: what the account keeps beside a stream and reports: tags, encryption, enhanced
// monitoring.
#include <algorithm>

#include "account/kinesis_internal.h"
#include "fmt/format.h"
#include "riffle/detail/epoch.h"
#include "riffle/kinesis.h"
#include "riffle/status.h"

namespace riffle {
namespace {

using detail::StreamAccess;
using detail::StreamEntry;
using detail::Violations;

constexpr int64_t kDayMs = 86'400'000;
constexpr std::size_t kEncryptionChangesPerDay = 25;
constexpr int kListTagsMax = 50;

constexpr ShardLevelMetric kAllMetrics[] = {
    ShardLevelMetric::kIncomingBytes,
    ShardLevelMetric::kIncomingRecords,
    ShardLevelMetric::kOutgoingBytes,
    ShardLevelMetric::kOutgoingRecords,
    ShardLevelMetric::kWriteProvisionedThroughputExceeded,
    ShardLevelMetric::kReadProvisionedThroughputExceeded,
    ShardLevelMetric::kIteratorAgeMilliseconds,
};

std::string RenderList(std::span<const std::string_view> items) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) {
    fmt::format_to(std::back_inserter(out), "{}{}", i == 0 ? "" : ", ", items[i]);
  }
  return out + "]";
}

// A request's list as the service prints it; a value that is none of the enumerators (an
// integer cast to the enum) prints as that integer.
std::string RenderMetrics(std::span<const ShardLevelMetric> metrics) {
  std::string out = "[";
  for (std::size_t i = 0; i < metrics.size(); ++i) {
    if (i > 0) out += ", ";
    const std::string_view name = ShardLevelMetricName(metrics[i]);
    if (name == "?") {
      fmt::format_to(std::back_inserter(out), "{}", static_cast<int>(metrics[i]));
    } else {
      out += name;
    }
  }
  return out + "]";
}

}  // namespace

// ---- Tags ----

absl::Status Kinesis::AddTagsToStream(const AddTagsToStreamInput& in) {
  {
    Violations v;
    if (in.tags.empty()) {
      v.AddRendered("tags", "{}", "Member must have length greater than or equal to 1");
    }
    // The service takes at most 10 tags a call (its reference: "a set of up to 10").
    detail::CheckTagMap(in.tags, 10, v);
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  }
  detail::EpochGuard guard;
  StreamEntry* e = nullptr;
  if (absl::Status s = detail::ResolveAndAdmit(core_, *registry_, "AddTagsToStream", in.stream_name,
                                               in.stream_arn, StreamAccess::kDescribe, &e);
      !s.ok()) {
    return s;
  }
  for (const Tag& t : in.tags) {
    if (!detail::TagTextOk(t.key, false) || !detail::TagTextOk(t.value, false)) {
      return detail::InvalidTagCharacters(false);
    }
  }
  std::lock_guard<std::mutex> lock(e->mu);
  std::size_t total = e->tags.size();
  for (const Tag& t : in.tags) total += e->tags.count(t.key) == 0 ? 1 : 0;
  if (total > static_cast<std::size_t>(core_.options.quotas.tags_per_stream)) {
    return InvalidArgumentError(fmt::format(
        "Failed to add tags to stream {} under account {} because a given stream cannot have "
        "more than {} tags associated with it.",
        e->name, core_.account_id(), core_.options.quotas.tags_per_stream));
  }
  for (const Tag& t : in.tags) e->tags[t.key] = t.value;
  return absl::OkStatus();
}

absl::Status Kinesis::RemoveTagsFromStream(const RemoveTagsFromStreamInput& in) {
  {
    Violations v;
    const std::string rendered = RenderList(in.tag_keys);
    if (in.tag_keys.empty()) {
      v.AddRendered("tagKeys", rendered, "Member must have length greater than or equal to 1");
    }
    if (in.tag_keys.size() > 50) {
      v.AddRendered("tagKeys", rendered, "Member must have length less than or equal to 50");
    }
    if (!std::all_of(in.tag_keys.begin(), in.tag_keys.end(), [](std::string_view k) {
          return !k.empty() && detail::Utf8Chars(k) <= 128;
        })) {
      v.AddRendered("tagKeys", rendered,
                    "Member must satisfy constraint: [Member must have length less than or "
                    "equal to 128, Member must have length greater than or equal to 1]");
    }
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  }
  detail::EpochGuard guard;
  StreamEntry* e = nullptr;
  if (absl::Status s =
          detail::ResolveAndAdmit(core_, *registry_, "RemoveTagsFromStream", in.stream_name,
                                  in.stream_arn, StreamAccess::kDescribe, &e);
      !s.ok()) {
    return s;
  }
  for (std::string_view k : in.tag_keys) {
    if (!detail::TagTextOk(k, true)) return detail::InvalidTagCharacters(true);
  }
  std::lock_guard<std::mutex> lock(e->mu);
  for (std::string_view k : in.tag_keys) e->tags.erase(std::string(k));  // unknown keys: ignored
  return absl::OkStatus();
}

absl::StatusOr<ListTagsForStreamOutput> Kinesis::ListTagsForStream(
    const ListTagsForStreamInput& in) {
  {
    Violations v;
    if (in.limit) v.Range("limit", *in.limit, 1, kListTagsMax);
    if (!in.exclusive_start_tag_key.empty()) {
      v.MaxLength("exclusiveStartTagKey", in.exclusive_start_tag_key,
                  detail::Utf8Chars(in.exclusive_start_tag_key), 128);
    }
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  }
  detail::EpochGuard guard;
  StreamEntry* e = nullptr;
  if (absl::Status s =
          detail::ResolveAndAdmit(core_, *registry_, "ListTagsForStream", in.stream_name,
                                  in.stream_arn, StreamAccess::kDescribe, &e);
      !s.ok()) {
    return s;
  }
  const std::size_t limit = static_cast<std::size_t>(in.limit.value_or(kListTagsMax));
  ListTagsForStreamOutput out;
  std::lock_guard<std::mutex> lock(e->mu);
  auto it = in.exclusive_start_tag_key.empty()
                ? e->tags.begin()
                : e->tags.upper_bound(std::string(in.exclusive_start_tag_key));
  for (; it != e->tags.end(); ++it) {
    if (out.tags.size() == limit) {
      out.has_more_tags = true;
      break;
    }
    out.tags.push_back(Tag{it->first, it->second});
  }
  return out;
}

// ---- Encryption ----

namespace {

// Start/StopStreamEncryption: the members, an ACTIVE stream, the 24-hour quota (limits on).
absl::Status ChangeEncryption(detail::AccountCore& core, detail::KinesisRegistry& registry,
                              std::string_view operation, std::string_view name,
                              std::string_view arn, EncryptionType type, std::string_view key_id,
                              bool start) {
  {
    Violations v;
    if (EncryptionTypeName(type) == "?") {
      v.EnumValue("encryptionType", static_cast<int>(type), "[NONE, KMS]");
    }
    v.MinLength("keyId", key_id, key_id.size(), 1);
    v.MaxLength("keyId", key_id, key_id.size(), 2048);
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  }
  if (type != EncryptionType::kKms) {
    return InvalidArgumentError(
        fmt::format("EncryptionType {} is not valid for {}: KMS is the only valid value.",
                    EncryptionTypeName(type), operation));
  }
  detail::EpochGuard guard;
  StreamEntry* e = nullptr;
  if (absl::Status s = detail::ResolveStream(core, registry, name, arn, StreamAccess::kModify, &e);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = detail::Admit(core, operation, e); !s.ok()) return s;
  const int64_t now_ms = core.clock.NowMillis();
  const StreamStatus status = detail::StatusOf(*e, now_ms);
  if (status != StreamStatus::kActive) return detail::NotActive(e->name, core.account_id(), status);
  std::lock_guard<std::mutex> lock(e->mu);
  if (core.limits && !e->encryption_changes.TryAdd(now_ms, kDayMs, kEncryptionChangesPerDay)) {
    return LimitExceededError(fmt::format(
        "The encryption of stream {} under account {} has changed {} times in the last 24 "
        "hours, the most allowed.",
        e->name, core.account_id(), kEncryptionChangesPerDay));
  }
  // The stream is ACTIVE, so the previous change has taken effect.
  const int64_t until_ms = detail::AddMillis(now_ms, core.options.update_duration);
  e->encryption_before.store(e->encryption.load(std::memory_order_relaxed),
                             std::memory_order_relaxed);
  e->encryption_effective_ms.store(until_ms, std::memory_order_release);
  e->encryption.store(start ? EncryptionType::kKms : EncryptionType::kNone,
                      std::memory_order_relaxed);
  e->key_id = start ? std::string(key_id) : std::string();
  e->updating_until_ms.store(until_ms, std::memory_order_release);
  return absl::OkStatus();
}

}  // namespace

absl::Status Kinesis::StartStreamEncryption(const StartStreamEncryptionInput& in) {
  return ChangeEncryption(core_, *registry_, "StartStreamEncryption", in.stream_name, in.stream_arn,
                          in.encryption_type, in.key_id, true);
}

absl::Status Kinesis::StopStreamEncryption(const StopStreamEncryptionInput& in) {
  return ChangeEncryption(core_, *registry_, "StopStreamEncryption", in.stream_name, in.stream_arn,
                          in.encryption_type, in.key_id, false);
}

// ---- Enhanced monitoring ----

namespace {

absl::StatusOr<EnhancedMonitoringOutput> ChangeMonitoring(detail::AccountCore& core,
                                                          detail::KinesisRegistry& registry,
                                                          std::string_view operation,
                                                          const EnableEnhancedMonitoringInput& in,
                                                          bool enable) {
  {
    Violations v;
    const std::string rendered = RenderMetrics(in.shard_level_metrics);
    if (in.shard_level_metrics.empty()) {
      v.AddRendered("shardLevelMetrics", rendered,
                    "Member must have length greater than or equal to 1");
    }
    if (in.shard_level_metrics.size() > 7) {
      v.AddRendered("shardLevelMetrics", rendered,
                    "Member must have length less than or equal to 7");
    }
    if (std::ranges::any_of(in.shard_level_metrics,
                            [](ShardLevelMetric m) { return ShardLevelMetricName(m) == "?"; })) {
      v.AddRendered("shardLevelMetrics", rendered,
                    "Member must satisfy constraint: [Member must satisfy enum value set: "
                    "[IncomingBytes, IncomingRecords, OutgoingBytes, OutgoingRecords, "
                    "WriteProvisionedThroughputExceeded, ReadProvisionedThroughputExceeded, "
                    "IteratorAgeMilliseconds, ALL]]");
    }
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  }
  detail::EpochGuard guard;
  StreamEntry* e = nullptr;
  if (absl::Status s = detail::ResolveStream(core, registry, in.stream_name, in.stream_arn,
                                             StreamAccess::kModify, &e);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = detail::Admit(core, operation, e); !s.ok()) return s;
  std::vector<ShardLevelMetric> asked;
  for (ShardLevelMetric m : in.shard_level_metrics) {
    if (m == ShardLevelMetric::kAll) {
      asked.assign(std::begin(kAllMetrics), std::end(kAllMetrics));
      break;
    }
    asked.push_back(m);
  }
  EnhancedMonitoringOutput out;
  out.stream_name = e->name;
  out.stream_arn = e->arn;
  std::lock_guard<std::mutex> lock(e->mu);
  out.current_shard_level_metrics = e->metrics;
  std::vector<ShardLevelMetric> next;
  for (ShardLevelMetric m : kAllMetrics) {
    const bool on = std::find(e->metrics.begin(), e->metrics.end(), m) != e->metrics.end();
    const bool named = std::find(asked.begin(), asked.end(), m) != asked.end();
    if (enable ? (on || named) : (on && !named)) next.push_back(m);
  }
  e->metrics = next;
  out.desired_shard_level_metrics = std::move(next);
  return out;
}

}  // namespace

absl::StatusOr<EnhancedMonitoringOutput> Kinesis::EnableEnhancedMonitoring(
    const EnableEnhancedMonitoringInput& in) {
  return ChangeMonitoring(core_, *registry_, "EnableEnhancedMonitoring", in, true);
}

absl::StatusOr<EnhancedMonitoringOutput> Kinesis::DisableEnhancedMonitoring(
    const DisableEnhancedMonitoringInput& in) {
  return ChangeMonitoring(core_, *registry_, "DisableEnhancedMonitoring", in, false);
}

}  // namespace riffle
