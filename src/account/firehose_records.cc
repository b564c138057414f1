// Firehose: PutRecord, PutRecordBatch (DirectPut, with the service's rates) and the tags.
#include <algorithm>
#include <utility>
#include <vector>

#include "account/firehose_internal.h"
#include "common/validation.h"
#include "fmt/format.h"
#include "riffle/firehose.h"
#include "riffle/status.h"

namespace riffle {

using detail::DeliveryStreamEntry;
using detail::Violations;

namespace {

constexpr std::string_view kNotPermittedOnKinesisSource =
    "This operation is not permitted on KinesisStreamAsSource delivery stream type.";
constexpr std::string_view kSlowDownMessage = "Slow down.";

// The delivery stream's record id, in decimal as its error output writes it ("recordId").
std::string RecordId(uint64_t id) { return fmt::format("{}", id); }

// The entry for a put: it exists, is not CREATING, and is a DirectPut one.
absl::StatusOr<std::shared_ptr<DeliveryStreamEntry>> FindForPut(detail::FirehoseRegistry& r,
                                                                detail::AccountCore& core,
                                                                std::string_view name) {
  const int64_t now_ms = core.clock.NowMillis();
  std::shared_ptr<DeliveryStreamEntry> e;
  {
    std::lock_guard<std::mutex> lock(r.mu);
    e = r.FindLive(name, now_ms);
  }
  if (e == nullptr || e->StatusAt(now_ms) == DeliveryStreamStatus::kCreating) {
    return detail::DeliveryStreamNotFound(name, core.account_id());
  }
  if (e->type == DeliveryStreamType::kKinesisStreamAsSource) {
    return InvalidArgumentError(kNotPermittedOnKinesisSource);
  }
  return e;
}

}  // namespace

absl::StatusOr<FirehosePutRecordOutput> Firehose::PutRecord(const FirehosePutRecordInput& in) {
  {
    Violations v;
    v.Name("deliveryStreamName", in.delivery_stream_name, 64);
    v.MaxBlobLength("record.data", in.record.data.size(), kMaxDeliveryRecordBytes);
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  }
  auto e = FindForPut(*registry_, core_, in.delivery_stream_name);
  if (!e.ok()) return e.status();
  DeliveryStreamEntry& entry = **e;
  if (absl::Status s = detail::AdmitFirehose(core_, "PutRecord", entry.name, entry.arn); !s.ok()) {
    return s;
  }
  if (core_.limits) {
    const int64_t now = core_.clock.NowMillis();
    const uint64_t size = in.record.data.size();
    std::lock_guard<std::mutex> lock(registry_->mu);
    if (!entry.requests.Has(1, now) || !entry.records.Has(1, now) || !entry.bytes.Has(size, now)) {
      return ServiceUnavailableError(kSlowDownMessage);
    }
    (void)entry.requests.TryTake(1, now);
    (void)entry.records.TryTake(1, now);
    (void)entry.bytes.TryTake(size, now);
  }
  auto put = entry.stream->PutRecord(in.record.data);
  if (!put.ok()) return put.status();
  return FirehosePutRecordOutput{.record_id = RecordId(put->record_id),
                                 .encrypted = put->encrypted};
}

absl::StatusOr<PutRecordBatchOutput> Firehose::PutRecordBatch(const PutRecordBatchInput& in) {
  {
    Violations v;
    v.Name("deliveryStreamName", in.delivery_stream_name, 64);
    if (in.records.empty() || in.records.size() > kMaxPutRecordBatchRecords) {
      v.AddRendered("records", fmt::format("[{} entries]", in.records.size()),
                    in.records.empty() ? "Member must have length greater than or equal to 1"
                                       : "Member must have length less than or equal to 500");
    }
    for (std::size_t i = 0; i < in.records.size() && i < kMaxPutRecordBatchRecords; ++i) {
      if (in.records[i].data.size() > kMaxDeliveryRecordBytes) {
        v.MaxBlobLength(fmt::format("records.{}.member.data", i + 1), in.records[i].data.size(),
                        kMaxDeliveryRecordBytes);
      }
    }
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  }
  std::size_t total = 0;
  for (const FirehoseRecord& r : in.records) total += r.data.size();
  if (total > kMaxPutRecordBatchBytes) {
    // The service's words (the limit is 4 MiB of record data).
    return InvalidArgumentError("Records size exceeds 4 MB limit");
  }
  auto e = FindForPut(*registry_, core_, in.delivery_stream_name);
  if (!e.ok()) return e.status();
  DeliveryStreamEntry& entry = **e;
  if (absl::Status s = detail::AdmitFirehose(core_, "PutRecordBatch", entry.name, entry.arn);
      !s.ok()) {
    return s;
  }
  PutRecordBatchOutput out;
  out.request_responses.resize(in.records.size());
  // With the limits on, each record takes its share of the rates in order; a record over
  // them fails on its own ("Slow down."), as the service answers per record.
  std::vector<std::string_view> accepted;
  std::vector<std::size_t> index;
  accepted.reserve(in.records.size());
  index.reserve(in.records.size());
  if (core_.limits) {
    const int64_t now = core_.clock.NowMillis();
    std::lock_guard<std::mutex> lock(registry_->mu);
    if (!entry.requests.TryTake(1, now)) return ServiceUnavailableError(kSlowDownMessage);
    for (std::size_t i = 0; i < in.records.size(); ++i) {
      const uint64_t size = in.records[i].data.size();
      if (entry.records.Has(1, now) && entry.bytes.Has(size, now)) {
        (void)entry.records.TryTake(1, now);
        (void)entry.bytes.TryTake(size, now);
        accepted.push_back(in.records[i].data);
        index.push_back(i);
      } else {
        out.request_responses[i].error_code = std::string(kServiceUnavailableException);
        out.request_responses[i].error_message = std::string(kSlowDownMessage);
        ++out.failed_put_count;
      }
    }
  } else {
    for (std::size_t i = 0; i < in.records.size(); ++i) {
      accepted.push_back(in.records[i].data);
      index.push_back(i);
    }
  }
  if (!accepted.empty()) {
    auto put = entry.stream->PutRecordBatch(accepted);
    if (!put.ok()) return put.status();
    out.encrypted = put->encrypted;
    for (std::size_t j = 0; j < put->request_responses.size() && j < index.size(); ++j) {
      const PutRecordBatchResponseEntry& r = put->request_responses[j];
      PutRecordBatchResponseEntryOutput& o = out.request_responses[index[j]];
      if (r.error_code.empty()) {
        o.record_id = RecordId(r.record_id);
      } else {
        o.error_code = std::string(r.error_code);
        o.error_message = std::string(r.error_message);
        ++out.failed_put_count;
      }
    }
  }
  return out;
}

// ---- Tags ----

namespace {

constexpr std::size_t kMaxTagsPerDeliveryStream = 50;

}  // namespace

absl::Status Firehose::TagDeliveryStream(const TagDeliveryStreamInput& in) {
  {
    Violations v;
    v.Name("deliveryStreamName", in.delivery_stream_name, 64);
    if (in.tags.empty() || in.tags.size() > kMaxTagsPerDeliveryStream) {
      v.AddRendered("tags", fmt::format("[{} entries]", in.tags.size()),
                    in.tags.empty() ? "Member must have length greater than or equal to 1"
                                    : "Member must have length less than or equal to 50");
    }
    for (std::size_t i = 0; i < in.tags.size() && i < kMaxTagsPerDeliveryStream; ++i) {
      detail::CheckFirehoseTagKey(in.tags[i].key, fmt::format("tags.{}.member.key", i + 1), v);
      detail::CheckFirehoseTagValue(in.tags[i].value, fmt::format("tags.{}.member.value", i + 1),
                                    v);
    }
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  }
  const std::string arn = DeliveryStreamArn(in.delivery_stream_name);
  if (absl::Status s =
          detail::AdmitFirehose(core_, "TagDeliveryStream", in.delivery_stream_name, arn);
      !s.ok()) {
    return s;
  }
  std::lock_guard<std::mutex> lock(registry_->mu);
  const std::shared_ptr<DeliveryStreamEntry> entry =
      registry_->FindLive(in.delivery_stream_name, core_.clock.NowMillis());
  if (entry == nullptr) {
    return detail::DeliveryStreamNotFound(in.delivery_stream_name, core_.account_id());
  }
  std::map<std::string, std::string> tags = entry->tags;
  for (const Tag& t : in.tags) tags[t.key] = t.value;
  if (tags.size() > kMaxTagsPerDeliveryStream) {
    return LimitExceededError(fmt::format(
        "Firehose {} under account {} would have {} tags: a delivery stream has at most {}.",
        in.delivery_stream_name, core_.account_id(), tags.size(), kMaxTagsPerDeliveryStream));
  }
  entry->tags = std::move(tags);
  return absl::OkStatus();
}

absl::Status Firehose::UntagDeliveryStream(const UntagDeliveryStreamInput& in) {
  {
    Violations v;
    v.Name("deliveryStreamName", in.delivery_stream_name, 64);
    if (in.tag_keys.empty() || in.tag_keys.size() > kMaxTagsPerDeliveryStream) {
      v.AddRendered("tagKeys", fmt::format("[{} entries]", in.tag_keys.size()),
                    in.tag_keys.empty() ? "Member must have length greater than or equal to 1"
                                        : "Member must have length less than or equal to 50");
    }
    for (std::size_t i = 0; i < in.tag_keys.size() && i < kMaxTagsPerDeliveryStream; ++i) {
      detail::CheckFirehoseTagKey(in.tag_keys[i], fmt::format("tagKeys.{}.member", i + 1), v);
    }
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  }
  const std::string arn = DeliveryStreamArn(in.delivery_stream_name);
  if (absl::Status s =
          detail::AdmitFirehose(core_, "UntagDeliveryStream", in.delivery_stream_name, arn);
      !s.ok()) {
    return s;
  }
  std::lock_guard<std::mutex> lock(registry_->mu);
  const std::shared_ptr<DeliveryStreamEntry> entry =
      registry_->FindLive(in.delivery_stream_name, core_.clock.NowMillis());
  if (entry == nullptr) {
    return detail::DeliveryStreamNotFound(in.delivery_stream_name, core_.account_id());
  }
  for (std::string_view k : in.tag_keys) {
    auto t = entry->tags.find(std::string(k));
    if (t != entry->tags.end()) entry->tags.erase(t);
  }
  return absl::OkStatus();
}

absl::StatusOr<ListTagsForDeliveryStreamOutput> Firehose::ListTagsForDeliveryStream(
    const ListTagsForDeliveryStreamInput& in) {
  {
    Violations v;
    v.Name("deliveryStreamName", in.delivery_stream_name, 64);
    if (in.limit) v.Range("limit", *in.limit, 1, 50);
    if (!in.exclusive_start_tag_key.empty()) {
      v.MaxLength("exclusiveStartTagKey", in.exclusive_start_tag_key,
                  detail::Utf8Chars(in.exclusive_start_tag_key), 128);
    }
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  }
  const std::string arn = DeliveryStreamArn(in.delivery_stream_name);
  if (absl::Status s =
          detail::AdmitFirehose(core_, "ListTagsForDeliveryStream", in.delivery_stream_name, arn);
      !s.ok()) {
    return s;
  }
  const std::size_t limit = static_cast<std::size_t>(in.limit.value_or(50));
  std::lock_guard<std::mutex> lock(registry_->mu);
  const std::shared_ptr<DeliveryStreamEntry> entry =
      registry_->FindLive(in.delivery_stream_name, core_.clock.NowMillis());
  if (entry == nullptr) {
    return detail::DeliveryStreamNotFound(in.delivery_stream_name, core_.account_id());
  }
  ListTagsForDeliveryStreamOutput out;
  const auto& tags = entry->tags;
  auto t = in.exclusive_start_tag_key.empty()
               ? tags.begin()
               : tags.upper_bound(std::string(in.exclusive_start_tag_key));
  for (; t != tags.end(); ++t) {
    if (out.tags.size() == limit) {
      out.has_more_tags = true;
      break;
    }
    out.tags.push_back({.key = t->first, .value = t->second});
  }
  return out;
}

}  // namespace riffle
