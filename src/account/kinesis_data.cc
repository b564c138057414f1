// Kinesis: the data plane (PutRecord, PutRecords, GetShardIterator, GetRecords by iterator
// string) and enhanced fan-out (consumers, SubscribeToShard).
#include <algorithm>
#include <optional>

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

constexpr uint64_t kPushBytesPerSecond = uint64_t{2} << 20;
constexpr int kConsumersListMax = 100;

// The shard a record would go to now ("" for an explicit hash key that is not one).
std::string_view RoutedShard(const StreamEntry& e, std::string_view key, std::string_view ehk) {
  HashKey hash_key;
  if (!ehk.empty()) {
    absl::StatusOr<HashKey> parsed = ParseHashKey(ehk);
    if (!parsed.ok()) return {};
    hash_key = *parsed;
  } else {
    hash_key = ComputeHashKey(e.stream->options().routing, key);
  }
  return e.stream->ShardIdForHashKey(hash_key);
}

// ResourceNotFoundException for a shard of a stream that is not there (deleted, or never
// created), as the service words it.
absl::Status ShardNotFound(std::string_view shard_id, std::string_view stream,
                           std::string_view account_id) {
  return ResourceNotFoundError(fmt::format("Shard {} in stream {} under account {} does not exist",
                                           shard_id, stream, account_id));
}

// A consumer named by its ARN, or by its stream's ARN and its name.
absl::Status ResolveConsumer(detail::AccountCore& core, const detail::KinesisRegistry& registry,
                             std::string_view stream_arn, std::string_view consumer_name,
                             std::string_view consumer_arn, StreamEntry** out,
                             std::string_view* consumer) {
  Violations v;
  std::optional<detail::ParsedArn> parsed;
  if (!consumer_arn.empty()) {
    parsed = detail::ParseConsumerArn(consumer_arn);
    v.Pattern("consumerARN", consumer_arn, detail::kConsumerArnPattern, parsed.has_value());
    v.MaxLength("consumerARN", consumer_arn, consumer_arn.size(), 2048);
  }
  if (!consumer_name.empty()) v.Name("consumerName", consumer_name);
  if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  if (consumer_arn.empty() && (stream_arn.empty() || consumer_name.empty())) {
    return InvalidArgumentError(
        "Name the consumer by ConsumerARN, or by StreamARN and ConsumerName.");
  }
  if (parsed) {
    const std::string arn = fmt::format("arn:{}:kinesis:{}:{}:stream/{}", parsed->partition,
                                        parsed->region, parsed->account, parsed->stream);
    if (!stream_arn.empty() && stream_arn != arn) {
      return InvalidArgumentError(
          fmt::format("ConsumerARN {} does not belong to stream {}.", consumer_arn, stream_arn));
    }
    if (!consumer_name.empty() && consumer_name != parsed->consumer) {
      return InvalidArgumentError(
          fmt::format("ConsumerARN {} does not name consumer {}.", consumer_arn, consumer_name));
    }
    *consumer = consumer_arn;
    return detail::ResolveStream(core, registry, {}, arn, StreamAccess::kData, out);
  }
  *consumer = consumer_name;
  return detail::ResolveStream(core, registry, {}, stream_arn, StreamAccess::kData, out);
}

// A consumer is CREATING for the account's create_duration after its registration, as on
// the service (which always answers RegisterStreamConsumer with CREATING), then ACTIVE.
ConsumerStatus StatusAt(const ConsumerDescription& c, const AccountOptions& options,
                        int64_t now_ms) {
  const int64_t active_ms =
      detail::AddMillis(absl::ToUnixMillis(c.consumer_creation_timestamp), options.create_duration);
  return now_ms < active_ms ? ConsumerStatus::kCreating : c.consumer_status;
}

// The DELETING consumers of `e` whose time is not up (the others are dropped), with
// `consumer` (a name or an ARN; empty: every one).
std::vector<ConsumerDescription> DeletingConsumers(StreamEntry& e, std::string_view consumer,
                                                   int64_t now_ms) {
  std::vector<ConsumerDescription> out;
  std::lock_guard<std::mutex> lock(e.mu);
  std::erase_if(e.deleting_consumers, [now_ms](const StreamEntry::DeletingConsumer& d) {
    return now_ms >= d.gone_at_ms;
  });
  for (const StreamEntry::DeletingConsumer& d : e.deleting_consumers) {
    if (consumer.empty() || d.description.consumer_name == consumer ||
        d.description.consumer_arn == consumer) {
      out.push_back(d.description);
    }
  }
  return out;
}

// The encryption a write gets: a change applies once the stream is ACTIVE again.
EncryptionType WritesEncryption(const detail::AccountCore& core, const StreamEntry& e) {
  const int64_t effective_ms = e.encryption_effective_ms.load(std::memory_order_acquire);
  if (effective_ms != INT64_MIN && core.clock.NowMillis() < effective_ms) {
    return e.encryption_before.load(std::memory_order_relaxed);
  }
  return e.encryption.load(std::memory_order_relaxed);
}

}  // namespace

// ---- Records ----

absl::StatusOr<PutRecordOutput> Kinesis::PutRecord(const PutRecordInput& in) {
  detail::EpochGuard guard;
  // The common case inline: a stream named, found, in no timed state.
  StreamEntry* e = in.stream_arn.empty() ? registry_->FindByName(in.stream_name) : nullptr;
  if (e == nullptr || e->timed.load(std::memory_order_acquire)) [[unlikely]] {
    // Every member is checked before the stream is looked up (the stream checks them again
    // when it is found).
    Violations fields;
    detail::AddPutRecordViolations(PutRecordRequest{in.partition_key, in.data, in.explicit_hash_key,
                                                    in.sequence_number_for_ordering},
                                   kDefaultMaxRecordSizeBytes, fields);
    if (absl::Status s = detail::ResolveStream(core_, *registry_, in.stream_name, in.stream_arn,
                                               StreamAccess::kData, &e, &fields);
        !s.ok()) {
      return s;
    }
  }
  if (core_.faults.active()) [[unlikely]] {
    // The request is checked before any fault, as the service validates first: a bad one
    // gets its ValidationException whichever way the stream was named.
    if (absl::Status s = detail::CheckPutRecordRequest(
            PutRecordRequest{in.partition_key, in.data, in.explicit_hash_key,
                             in.sequence_number_for_ordering},
            e->stream->options().max_record_size_bytes);
        !s.ok()) {
      return s;
    }
    const std::string_view shard = RoutedShard(*e, in.partition_key, in.explicit_hash_key);
    if (absl::Status s = core_.Inject("PutRecord", e->name, e->arn, shard); !s.ok()) return s;
  }
  absl::StatusOr<PutRecordResult> r = e->stream->PutRecord(PutRecordRequest{
      in.partition_key, in.data, in.explicit_hash_key, in.sequence_number_for_ordering});
  if (!r.ok()) return r.status();
  if (core_.limits && e->mode.load(std::memory_order_relaxed) == StreamMode::kOnDemand)
      [[unlikely]] {
    MeterWrites(*e, in.partition_key.size() + in.data.size(), 1);
  }
  return PutRecordOutput{r->shard_id, r->sequence_number, WritesEncryption(core_, *e)};
}

absl::Status Kinesis::PutRecords(const PutRecordsInput& in, PutRecordsOutput& out) {
  detail::EpochGuard guard;
  StreamEntry* e = in.stream_arn.empty() ? registry_->FindByName(in.stream_name) : nullptr;
  if (e == nullptr || e->timed.load(std::memory_order_acquire)) [[unlikely]] {
    Violations fields;  // every member before the stream is looked up, as for PutRecord
    detail::AddPutRecordsViolations(in.records, kDefaultMaxRecordSizeBytes, fields);
    if (absl::Status s = detail::ResolveStream(core_, *registry_, in.stream_name, in.stream_arn,
                                               StreamAccess::kData, &e, &fields);
        !s.ok()) {
      return s;
    }
  }
  out.encryption_type = WritesEncryption(core_, *e);
  if (core_.faults.active()) [[unlikely]] {
    return PutRecordsWithFaults(*e, in, out);
  }
  if (absl::Status s = e->stream->PutRecords(in.records, out); !s.ok()) return s;
  if (core_.limits && e->mode.load(std::memory_order_relaxed) == StreamMode::kOnDemand)
      [[unlikely]] {
    uint64_t bytes = 0, records = 0;
    for (std::size_t i = 0; i < in.records.size(); ++i) {
      if (!out.records[i].error_code.empty()) continue;
      bytes += in.records[i].partition_key.size() + in.records[i].data.size();
      ++records;
    }
    MeterWrites(*e, bytes, records);
  }
  return absl::OkStatus();
}

absl::StatusOr<PutRecordsOutput> Kinesis::PutRecords(const PutRecordsInput& in) {
  PutRecordsOutput out;
  if (absl::Status s = PutRecords(in, out); !s.ok()) return s;
  return out;
}

absl::Status Kinesis::PutRecordsWithFaults(StreamEntry& e, const PutRecordsInput& in,
                                           PutRecordsOutput& out) {
  // The request is refused whole before any fault, as the service validates first.
  if (absl::Status s = e.stream->CheckPutRecords(in.records); !s.ok()) return s;
  if (absl::Status s = core_.Inject("PutRecords", e.name, e.arn, {}); !s.ok()) return s;
  // Per entry: the entries a per-entry rule fails are not written; the rest go in one call.
  struct Failed {
    std::string_view code;
    std::string message;
  };
  std::vector<std::optional<Failed>> failed(in.records.size());
  std::vector<PutRecordsRequestEntry> pass;
  absl::Duration latency = absl::ZeroDuration();
  for (std::size_t i = 0; i < in.records.size(); ++i) {
    const PutRecordsRequestEntry& r = in.records[i];
    const std::string_view shard = RoutedShard(e, r.partition_key, r.explicit_hash_key);
    std::optional<FaultInjection> f =
        core_.faults.Evaluate("PutRecords", e.name, e.arn, shard, FaultScope::kEntry);
    if (f) latency += f->latency;
    if (f && !f->error.empty()) {
      const std::string_view code =
          f->error == kInternalFailure ? kInternalFailure : kProvisionedThroughputExceededException;
      failed[i] = Failed{
          code, f->message.empty()
                    ? detail::InjectedMessage(code, "PutRecords", e.name, core_.account_id(), shard)
                    : f->message};
    } else {
      pass.push_back(r);
    }
  }
  if (latency > absl::ZeroDuration()) core_.Delay(latency);
  PutRecordsResult written;
  if (!pass.empty()) {
    if (absl::Status s = e.stream->PutRecords(pass, written); !s.ok()) return s;
  }
  out.failed_record_count = written.failed_record_count;
  out.records.resize(in.records.size());
  uint64_t bytes = 0, records = 0;
  std::size_t next = 0;
  for (std::size_t i = 0; i < in.records.size(); ++i) {
    PutRecordsResultEntry& r = out.records[i];
    if (failed[i]) {
      ++out.failed_record_count;
      r.shard_id = {};
      r.sequence_number.reset();
      r.error_code = failed[i]->code;
      r.error_message = std::move(failed[i]->message);
      continue;
    }
    r = std::move(written.records[next++]);
    if (r.error_code.empty()) {
      bytes += in.records[i].partition_key.size() + in.records[i].data.size();
      ++records;
    }
  }
  if (core_.limits && e.mode.load(std::memory_order_relaxed) == StreamMode::kOnDemand) {
    MeterWrites(e, bytes, records);
  }
  return absl::OkStatus();
}

absl::StatusOr<GetShardIteratorOutput> Kinesis::GetShardIterator(const GetShardIteratorInput& in) {
  // Members are validated before the stream is looked up, as the service does.
  Violations fields;
  detail::AddIteratorViolations(GetShardIteratorRequest{in.shard_id, in.shard_iterator_type,
                                                        in.starting_sequence_number, in.timestamp},
                                fields);
  detail::EpochGuard guard;
  StreamEntry* e = nullptr;
  if (absl::Status s = detail::ResolveStream(core_, *registry_, in.stream_name, in.stream_arn,
                                             StreamAccess::kData, &e, &fields);
      !s.ok()) {
    if (!IsResourceNotFoundException(s)) return s;
    // The service names the shard it could not find, whatever the stream.
    std::string_view name = in.stream_name;
    if (name.empty()) {
      if (const auto parsed = detail::ParseStreamArn(in.stream_arn)) name = parsed->stream;
    }
    const std::optional<uint64_t> index = detail::ResolveShardId(in.shard_id);
    if (!index) {
      return ResourceNotFoundError(
          fmt::format("Could not find shard {} in stream {} under "
                      "account {}.",
                      in.shard_id, name, core_.account_id()));
    }
    return ShardNotFound(FormatShardId(*index), name, core_.account_id());
  }
  if (absl::Status s = fields.ToStatus(); !s.ok()) return s;
  if (core_.limits) {
    // The service: five calls per second per account per open shard.
    const std::optional<uint64_t> index = detail::ResolveShardId(in.shard_id);
    const std::string shard = index ? FormatShardId(*index) : std::string(in.shard_id);
    if (!core_.TakeCall("GetShardIterator", fmt::format("{}/{}", e->arn, shard), 5)) {
      return ProvisionedThroughputExceededError(
          fmt::format("Rate exceeded for shard {} in stream {} under account {}.", shard, e->name,
                      core_.account_id()));
    }
  }
  if (absl::Status s = detail::Faults(core_, "GetShardIterator", e, {}, in.shard_id); !s.ok()) {
    return s;
  }
  absl::StatusOr<ShardIterator> it = e->stream->GetShardIterator(GetShardIteratorRequest{
      in.shard_id, in.shard_iterator_type, in.starting_sequence_number, in.timestamp});
  if (!it.ok()) return it.status();
  return GetShardIteratorOutput{it->ToString()};
}

absl::Status Kinesis::GetRecords(const GetRecordsInput& in, GetRecordsOutput& out) {
  const int limit = in.limit.value_or(detail::kMaxGetRecordsLimit);
  if (in.limit.has_value() || in.shard_iterator.empty() || in.shard_iterator.size() > 512 ||
      !in.stream_arn.empty()) {
    Violations v;
    if (in.limit) v.Range("limit", *in.limit, 1, detail::kMaxGetRecordsLimit);
    v.MinLength("shardIterator", in.shard_iterator, in.shard_iterator.size(), 1);
    v.MaxLength("shardIterator", in.shard_iterator, in.shard_iterator.size(), 512);
    if (!in.stream_arn.empty()) {  // the StreamARN shape, as every operation checks it
      v.Pattern("streamARN", in.stream_arn, detail::kStreamArnPattern,
                detail::ParseStreamArn(in.stream_arn).has_value());
      v.MaxLength("streamARN", in.stream_arn, in.stream_arn.size(), 2048);
    }
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  }
  absl::StatusOr<ShardIterator> it = ShardIterator::Parse(in.shard_iterator);
  if (!it.ok()) return detail::IteratorNotIssuedError();
  detail::EpochGuard guard;
  StreamEntry* e = registry_->FindByTag(it->stream_tag);
  const bool gone = e == nullptr || (e->timed.load(std::memory_order_acquire) &&
                                     e->GoneAt(core_.clock.NowMillis()));
  if (gone) {
    const std::optional<std::string> name = registry_->DeletedName(it->stream_tag);
    if (!name && e == nullptr) return detail::IteratorNotIssuedError();
    return ShardNotFound(FormatShardId(it->shard_index), name ? *name : e->name,
                         core_.account_id());
  }
  if (!in.stream_arn.empty() && in.stream_arn != e->arn) {
    return InvalidArgumentError(fmt::format(
        "StreamARN {} is not the stream of the ShardIterator ({}).", in.stream_arn, e->arn));
  }
  if (core_.faults.active()) [[unlikely]] {
    if (absl::Status s =
            core_.Inject("GetRecords", e->name, e->arn, FormatShardId(it->shard_index));
        !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = e->stream->GetRecords(*it, out.result, limit); !s.ok()) return s;
  if (out.result.next_shard_iterator) {
    out.result.next_shard_iterator->FormatTo(out.next_shard_iterator);
  } else {
    out.next_shard_iterator.clear();
  }
  return absl::OkStatus();
}

absl::StatusOr<GetRecordsOutput> Kinesis::GetRecords(const GetRecordsInput& in) {
  GetRecordsOutput out;
  if (absl::Status s = GetRecords(in, out); !s.ok()) return s;
  return out;
}

// ---- Enhanced fan-out ----

absl::StatusOr<RegisterStreamConsumerOutput> Kinesis::RegisterStreamConsumer(
    const RegisterStreamConsumerInput& in) {
  {
    Violations v;
    if (in.stream_arn.empty()) v.Null("streamARN");
    v.Name("consumerName", in.consumer_name);
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  }
  detail::EpochGuard guard;
  StreamEntry* e = nullptr;
  if (absl::Status s =
          detail::ResolveStream(core_, *registry_, {}, in.stream_arn, StreamAccess::kModify, &e);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = detail::Admit(core_, "RegisterStreamConsumer", e); !s.ok()) return s;
  // The name of a consumer still DELETING is taken until it is gone.
  if (!DeletingConsumers(*e, in.consumer_name, core_.clock.NowMillis()).empty()) {
    return ResourceInUseError(
        fmt::format("Consumer {} already exists for stream {}.", in.consumer_name, e->name));
  }
  if (core_.limits) {
    // The service creates at most 5 consumers of a stream at a time.
    constexpr int kMaxCreating = 5;
    const int64_t now_ms = core_.clock.NowMillis();
    int creating = 0;
    for (const ConsumerDescription& d : e->stream->ListStreamConsumers()) {
      creating += StatusAt(d, core_.options, now_ms) == ConsumerStatus::kCreating ? 1 : 0;
    }
    if (creating >= kMaxCreating) {
      return LimitExceededError(fmt::format(
          "Stream {} already has {} consumers in CREATING status; at most {} can be created at "
          "a time.",
          e->arn, creating, kMaxCreating));
    }
  }
  absl::StatusOr<ConsumerDescription> c =
      e->stream->RegisterStreamConsumer(in.consumer_name, in.options);
  if (!c.ok()) return c.status();
  c->consumer_status = ConsumerStatus::kCreating;
  return RegisterStreamConsumerOutput{*std::move(c)};
}

absl::Status Kinesis::DeregisterStreamConsumer(const DeregisterStreamConsumerInput& in) {
  detail::EpochGuard guard;
  StreamEntry* e = nullptr;
  std::string_view consumer;
  if (absl::Status s = ResolveConsumer(core_, *registry_, in.stream_arn, in.consumer_name,
                                       in.consumer_arn, &e, &consumer);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = detail::Admit(core_, "DeregisterStreamConsumer", e); !s.ok()) return s;
  if (core_.options.delete_duration <= absl::ZeroDuration()) {
    return e->stream->DeregisterStreamConsumer(consumer);
  }
  // As the service: DELETING for a while (its subscriptions end at once), then gone.
  absl::StatusOr<ConsumerDescription> c = e->stream->DescribeStreamConsumer(consumer);
  if (absl::Status s = e->stream->DeregisterStreamConsumer(consumer); !s.ok()) return s;
  if (c.ok()) {
    c->consumer_status = ConsumerStatus::kDeleting;
    const int64_t gone_at_ms =
        detail::AddMillis(core_.clock.NowMillis(), core_.options.delete_duration);
    std::lock_guard<std::mutex> lock(e->mu);
    e->deleting_consumers.push_back({*std::move(c), gone_at_ms});
  }
  return absl::OkStatus();
}

absl::StatusOr<DescribeStreamConsumerOutput> Kinesis::DescribeStreamConsumer(
    const DescribeStreamConsumerInput& in) {
  detail::EpochGuard guard;
  StreamEntry* e = nullptr;
  std::string_view consumer;
  if (absl::Status s = ResolveConsumer(core_, *registry_, in.stream_arn, in.consumer_name,
                                       in.consumer_arn, &e, &consumer);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = detail::Admit(core_, "DescribeStreamConsumer", e); !s.ok()) return s;
  absl::StatusOr<ConsumerDescription> c = e->stream->DescribeStreamConsumer(consumer);
  if (!c.ok()) {
    std::vector<ConsumerDescription> deleting =
        DeletingConsumers(*e, consumer, core_.clock.NowMillis());
    if (deleting.empty()) return c.status();
    return DescribeStreamConsumerOutput{std::move(deleting.front())};
  }
  c->consumer_status = StatusAt(*c, core_.options, core_.clock.NowMillis());
  return DescribeStreamConsumerOutput{*std::move(c)};
}

absl::StatusOr<ListStreamConsumersOutput> Kinesis::ListStreamConsumers(
    const ListStreamConsumersInput& in) {
  {
    Violations v;
    if (in.stream_arn.empty()) v.Null("streamARN");
    if (in.max_results) v.Range("maxResults", *in.max_results, 1, 10000);
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  }
  const int64_t now_ms = core_.clock.NowMillis();
  detail::EpochGuard guard;
  StreamEntry* e = nullptr;
  if (absl::Status s =
          detail::ResolveStream(core_, *registry_, {}, in.stream_arn, StreamAccess::kData, &e);
      !s.ok()) {
    return s;
  }
  std::optional<detail::PageToken> resume;  // where the previous page stopped
  if (!in.next_token.empty()) {
    if (in.stream_creation_timestamp) {
      return InvalidArgumentError(
          "NextToken and StreamCreationTimestamp cannot be provided together.");
    }
    absl::StatusOr<detail::PageToken> t =
        detail::DecodePageToken(in.next_token, 'C', core_.secret, now_ms);
    if (!t.ok()) return t.status();
    if (t->tag != e->tag) {
      return InvalidArgumentError(
          fmt::format("The NextToken was not issued for stream {}.", in.stream_arn));
    }
    resume = *std::move(t);
  } else if (in.stream_creation_timestamp &&
             absl::ToUnixMillis(*in.stream_creation_timestamp) !=
                 absl::ToUnixMillis(e->stream->DescribeStreamSummary().stream_creation_timestamp)) {
    return detail::StreamNotFound(e->name, core_.account_id());
  }
  if (absl::Status s = detail::Admit(core_, "ListStreamConsumers", e); !s.ok()) return s;
  std::vector<ConsumerDescription> all = e->stream->ListStreamConsumers();
  // DELETING consumers in their places: by creation time, as registered.
  std::vector<ConsumerDescription> deleting = DeletingConsumers(*e, {}, now_ms);
  if (!deleting.empty()) {
    all.insert(all.end(), std::make_move_iterator(deleting.begin()),
               std::make_move_iterator(deleting.end()));
    std::stable_sort(all.begin(), all.end(),
                     [](const ConsumerDescription& a, const ConsumerDescription& b) {
                       return a.consumer_creation_timestamp < b.consumer_creation_timestamp;
                     });
  }
  const std::size_t limit = static_cast<std::size_t>(
      std::min(in.max_results.value_or(kConsumersListMax), kConsumersListMax));
  // The next page starts at the consumer the last page left out first, found by its ARN,
  // so that deregistering consumers already listed skips none. If that one is gone, right
  // after the last one listed; if both are, at the first consumer created no earlier than
  // the one left out (consumers are listed by creation time, so none registered since the
  // last page is skipped; one created in the same millisecond may be listed again).
  std::size_t start = 0;
  if (resume) {
    auto at = [&](std::string_view arn) {
      return std::find_if(all.begin(), all.end(),
                          [&](const ConsumerDescription& c) { return c.consumer_arn == arn; });
    };
    const std::string_view names = resume->name;
    const std::size_t space = names.find(' ');
    const std::string_view first_left_out = names.substr(0, space);
    const std::string_view last_listed =
        space == std::string_view::npos ? std::string_view() : names.substr(space + 1);
    if (auto next = at(first_left_out); next != all.end()) {
      start = static_cast<std::size_t>(next - all.begin());
    } else if (auto last = at(last_listed); !last_listed.empty() && last != all.end()) {
      start = static_cast<std::size_t>(last - all.begin()) + 1;
    } else {
      start = static_cast<std::size_t>(
          std::partition_point(all.begin(), all.end(),
                               [&](const ConsumerDescription& c) {
                                 return absl::ToUnixMillis(c.consumer_creation_timestamp) <
                                        resume->filter_ms;
                               }) -
          all.begin());
    }
  }
  ListStreamConsumersOutput out;
  for (std::size_t i = start; i < all.size(); ++i) {
    if (out.consumers.size() == limit) {
      // Consumer names and stream names have no spaces: the two ARNs, one space between.
      detail::PageToken t;
      t.kind = 'C';
      t.tag = e->tag;
      t.issued_ms = now_ms;
      t.after = i;
      t.filter_ms = absl::ToUnixMillis(all[i].consumer_creation_timestamp);
      t.name = fmt::format("{} {}", all[i].consumer_arn, out.consumers.back().consumer_arn);
      out.next_token = detail::EncodePageToken(t, core_.secret);
      break;
    }
    if (all[i].consumer_status != ConsumerStatus::kDeleting) {
      all[i].consumer_status = StatusAt(all[i], core_.options, now_ms);
    }
    out.consumers.push_back(std::move(all[i]));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Subscription>> Kinesis::SubscribeToShard(
    const SubscribeToShardInput& in, SubscribeToShardHandler handler, SubscriptionOptions options) {
  std::optional<detail::ParsedArn> parsed = detail::ParseConsumerArn(in.consumer_arn);
  {
    Violations v;
    v.Pattern("consumerARN", in.consumer_arn, detail::kConsumerArnPattern, parsed.has_value());
    v.MaxLength("consumerARN", in.consumer_arn, in.consumer_arn.size(), 2048);
    v.Name("shardId", in.shard_id);
    if (absl::Status s = v.ToStatus(); !s.ok()) return s;
  }
  const std::string stream_arn = fmt::format("arn:{}:kinesis:{}:{}:stream/{}", parsed->partition,
                                             parsed->region, parsed->account, parsed->stream);
  detail::EpochGuard guard;
  StreamEntry* e = nullptr;
  if (absl::Status s =
          detail::ResolveStream(core_, *registry_, {}, stream_arn, StreamAccess::kData, &e);
      !s.ok()) {
    return s;
  }
  if (core_.limits) {
    // The service: one call per second per consumer and shard, whether it succeeds or not
    // (the 5-second rule below is about successful subscriptions).
    const std::optional<uint64_t> index = detail::ResolveShardId(in.shard_id);
    const std::string shard = index ? FormatShardId(*index) : std::string(in.shard_id);
    if (!core_.TakeCall("SubscribeToShard", fmt::format("{}/{}", in.consumer_arn, shard), 1)) {
      return LimitExceededError(fmt::format(
          "Rate exceeded for consumer {} and shard {} in stream {} under account {}: at most one "
          "SubscribeToShard call per second.",
          in.consumer_arn, shard, e->name, core_.account_id()));
    }
  }
  if (absl::Status s = detail::Faults(core_, "SubscribeToShard", e, {}, in.shard_id); !s.ok()) {
    return s;
  }
  // A consumer still DELETING cannot subscribe again.
  if (std::vector<ConsumerDescription> deleting =
          DeletingConsumers(*e, in.consumer_arn, core_.clock.NowMillis());
      !deleting.empty()) {
    return ResourceInUseError(fmt::format(
        "Consumer {} with creation timestamp {} under stream: {} , account {} is not in "
        "ACTIVE status.",
        deleting.front().consumer_name,
        absl::ToUnixSeconds(deleting.front().consumer_creation_timestamp), parsed->stream,
        core_.account_id()));
  }
  // A consumer still CREATING (there is a create_duration) cannot subscribe yet.
  if (core_.options.create_duration > absl::ZeroDuration()) {
    absl::StatusOr<ConsumerDescription> c = e->stream->DescribeStreamConsumer(in.consumer_arn);
    if (c.ok() &&
        StatusAt(*c, core_.options, core_.clock.NowMillis()) == ConsumerStatus::kCreating) {
      return ResourceInUseError(fmt::format(
          "Consumer {} with creation timestamp {} under stream: {} , account {} is not in "
          "ACTIVE status.",
          c->consumer_name, absl::ToUnixSeconds(c->consumer_creation_timestamp), parsed->stream,
          core_.account_id()));
    }
  }
  if (core_.limits) {
    // The service pushes at most 2 MiB/s of a shard to each consumer.
    options.max_bytes_per_second =
        std::min(options.max_bytes_per_second.value_or(kPushBytesPerSecond), kPushBytesPerSecond);
  }
  return e->stream->SubscribeToShard(
      SubscribeToShardRequest{in.consumer_arn, in.shard_id, in.starting_position},
      std::move(handler), options);
}

}  // namespace riffle
