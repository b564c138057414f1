// riffle::kafka::Stream: riffle::Stream's calls over a Kafka topic. The work is done by the
// core (puts, iterators, offsets) and the reader pool (GetRecords).
#include <algorithm>

#include "fmt/format.h"
#include "kafka/core.h"
#include "riffle/detail/read_path.h"
#include "stream/request_checks.h"
#include "stream/stream_errors.h"

namespace riffle::kafka {
namespace {

absl::Status Unsupported(std::string_view call, const std::string& stream) {
  return MakeError(
      absl::StatusCode::kUnimplemented, kUnsupportedOperationException,
      fmt::format("{} is not supported by stream {} on Kafka: a topic can only gain partitions, "
                  "and a new partition takes keys from the others, which breaks per-key order. "
                  "Create a topic with the shard count you need and copy into it.",
                  call, stream));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Stream>> Stream::Create(StreamOptions options) {
  absl::StatusOr<std::unique_ptr<detail::Core>> core = detail::Core::Create(std::move(options));
  if (!core.ok()) return core.status();
  return std::unique_ptr<Stream>(new Stream(*std::move(core)));
}

Stream::Stream(std::unique_ptr<detail::Core> core) : core_(std::move(core)) {}
Stream::~Stream() = default;

const std::string& Stream::name() const { return core_->topic(); }
Clock& Stream::clock() const { return core_->clock(); }
absl::Duration Stream::iterator_lifetime() const { return core_->options().iterator_lifetime; }
const StreamOptions& Stream::options() const { return core_->options(); }
uint64_t Stream::stream_tag() const { return core_->tag(); }
int Stream::shard_count() const { return core_->partitions(); }

void Stream::TEST_FailProducer(int kafka_error) {
  core_->TEST_FailProducer(static_cast<rd_kafka_resp_err_t>(kafka_error));
}

// ---- Puts ----

absl::StatusOr<PutRecordResult> Stream::PutRecord(const PutRecordRequest& request) {
  detail::Core& core = *core_;
  if (absl::Status s =
          riffle::detail::CheckPutRecordRequest(request, core.options().max_record_size_bytes);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<int32_t> partition =
      core.Route(request.partition_key, request.data.size(), request.explicit_hash_key);
  if (!partition.ok()) return partition.status();
  if (!request.sequence_number_for_ordering.empty()) {
    auto n =
        SequenceNumber::Parse(request.sequence_number_for_ordering, "SequenceNumberForOrdering");
    if (!n.ok()) return n.status();
    if (n->stream_tag != core.tag()) {
      return InvalidArgumentError(
          fmt::format("SequenceNumberForOrdering {} did not come from stream {}.",
                      request.sequence_number_for_ordering, core.topic()));
    }
    // A later put of the key lands after it: the same partition, a larger offset.
  }
  detail::PutBatch batch(1);
  core.Send(batch, 0,
            detail::OutRecord{
                *partition, request.partition_key, request.data, core.clock().NowMillis(), {}, {}});
  core.Wait(batch);
  const detail::PutSlot& slot = batch.slots[0];
  if (absl::Status s = core.SlotStatus(slot); !s.ok()) return s;
  const auto offset = static_cast<uint64_t>(slot.offset);
  return PutRecordResult{
      core.shard_id(slot.partition),
      SequenceNumber{core.tag(), static_cast<uint64_t>(slot.partition), offset, offset}};
}

namespace {

// Routes and sends every entry of `batch` (one per entry), refusing the invalid ones.
void SendEntries(detail::Core& core, detail::PutBatch& batch,
                 std::span<const PutRecordsRequestEntry> entries) {
  const int64_t now_ms = core.clock().NowMillis();
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const PutRecordsRequestEntry& e = entries[i];
    absl::StatusOr<int32_t> partition =
        core.Route(e.partition_key, e.data.size(), e.explicit_hash_key);
    if (!partition.ok()) {
      core.Refuse(batch, i, partition.status());
      continue;
    }
    core.Send(batch, i, detail::OutRecord{*partition, e.partition_key, e.data, now_ms, {}, {}});
  }
}

PutRecordsResult MakeResult(const detail::Core& core, const detail::PutBatch& batch) {
  PutRecordsResult result;
  result.records.reserve(batch.slots.size());
  for (const detail::PutSlot& slot : batch.slots) {
    result.records.push_back(core.ResultEntry(slot));
    if (!result.records.back().sequence_number) ++result.failed_record_count;
  }
  return result;
}

}  // namespace

absl::StatusOr<PutRecordsResult> Stream::PutRecords(
    std::span<const PutRecordsRequestEntry> entries) {
  if (absl::Status s =
          riffle::detail::CheckPutRecordsRequest(entries, core_->options().max_record_size_bytes);
      !s.ok()) {
    return s;
  }
  detail::PutBatch batch(entries.size());
  SendEntries(*core_, batch, entries);
  core_->Wait(batch);
  return MakeResult(*core_, batch);
}

absl::Status Stream::PutRecordsAsync(std::span<const PutRecordsRequestEntry> entries,
                                     PutRecordsCallback done) {
  if (absl::Status s =
          riffle::detail::CheckPutRecordsRequest(entries, core_->options().max_record_size_bytes);
      !s.ok()) {
    return s;
  }
  auto* batch = new detail::PutBatch(entries.size());  // Poll() deletes it
  batch->callback = std::move(done);
  core_->BeginAsync(*batch);
  SendEntries(*core_, *batch, entries);
  return absl::OkStatus();
}

size_t Stream::Poll() {
  std::vector<detail::PutBatch*> completed = core_->TakeCompleted();
  if (completed.empty()) return 0;
  size_t records = 0;
  absl::Status first_error;
  auto publish = [&] {
    std::lock_guard<std::mutex> lock(status_mu_);
    status_ = first_error;
  };
  for (size_t i = 0; i < completed.size(); ++i) {
    std::unique_ptr<detail::PutBatch> batch(completed[i]);
    records += batch->slots.size();
    if (first_error.ok()) {
      for (const detail::PutSlot& slot : batch->slots) {
        if (absl::Status s = core_->SlotStatus(slot); !s.ok()) {
          first_error = s;
          break;
        }
      }
    }
    if (!batch->callback) continue;
    try {
      batch->callback(MakeResult(*core_, *batch));
    } catch (...) {
      // The exception is the caller's; the batches not run yet wait for the next Poll().
      core_->ReturnCompleted(std::span(completed).subspan(i + 1));
      publish();
      throw;
    }
  }
  publish();
  return records;
}

absl::Status Stream::Flush(absl::Duration timeout) {
  const bool idle = core_->WaitAsync(timeout);
  Poll();
  if (idle) return absl::OkStatus();
  return detail::KafkaError(
      RD_KAFKA_RESP_ERR__TIMED_OUT,
      fmt::format("Flush of stream {}: {} records were not acknowledged within {}", name(),
                  core_->pending_records(), absl::FormatDuration(timeout)));
}

absl::Status Stream::last_error() const {
  std::lock_guard<std::mutex> lock(status_mu_);
  return status_;
}

uint64_t Stream::pending_records() const { return core_->pending_records(); }

// ---- Reads ----

absl::StatusOr<ShardIterator> Stream::GetShardIterator(const GetShardIteratorRequest& request) {
  detail::Core& core = *core_;
  if (absl::Status s = riffle::detail::CheckIteratorRequest(request); !s.ok()) return s;
  // Shard ids as riffle::Stream reads them ("shard-7" and "7" name shardId-000000000007).
  const std::optional<uint64_t> index = riffle::detail::ResolveShardId(request.shard_id);
  if (!index || *index >= static_cast<uint64_t>(core.partitions())) {
    return ResourceNotFoundError(fmt::format("Shard {} in stream {} does not exist.",
                                             request.shard_id.substr(0, 200), core.topic()));
  }
  const auto partition = static_cast<int32_t>(*index);
  const std::string& shard_id = core.shard_id(partition);
  auto iterator = [&](int64_t offset) {
    return core.MakeIterator(*index, offset, core.clock().NowMillis());
  };
  switch (request.type) {
    case ShardIteratorType::kTrimHorizon:
    case ShardIteratorType::kLatest: {
      auto marks = core.Watermarks(partition);
      if (!marks.ok()) return marks.status();
      return iterator(request.type == ShardIteratorType::kTrimHorizon ? marks->first
                                                                      : marks->second);
    }
    case ShardIteratorType::kAtTimestamp: {
      // As the service and riffle::Stream refuse it, in their words (src/stream/stream.cc).
      const int64_t now_ms = core.clock().NowMillis();
      if (absl::ToUnixMillis(*request.timestamp) > now_ms) {
        return InvalidArgumentError(fmt::format(
            "The timestampInMillis parameter cannot be greater than the "
            "currentTimestampInMillis. timestampInMillis: {}, currentTimestampInMillis: {}",
            absl::ToUnixMillis(*request.timestamp), now_ms));
      }
      auto offset = core.OffsetForTime(partition, absl::ToUnixMillis(*request.timestamp));
      if (!offset.ok()) return offset.status();
      if (*offset >= 0) return iterator(*offset);
      auto marks = core.Watermarks(partition);  // no record at or after the time: the end
      if (!marks.ok()) return marks.status();
      return iterator(marks->second);
    }
    case ShardIteratorType::kAtSequenceNumber:
    case ShardIteratorType::kAfterSequenceNumber:
      break;
  }
  absl::StatusOr<SequenceNumber> n =
      SequenceNumber::Parse(request.starting_sequence_number, "StartingSequenceNumber");
  if (!n.ok()) return n.status();
  if (n->stream_tag != core.tag() || n->shard_index != *index) {
    return InvalidArgumentError(fmt::format(
        "StartingSequenceNumber {} used in GetShardIterator on shard {} in stream {} is "
        "invalid because it did not come from this {}.",
        request.starting_sequence_number, shard_id, core.topic(),
        n->stream_tag != core.tag() ? "stream" : "shard"));
  }
  auto not_a_record = [&] {
    return InvalidArgumentError(fmt::format(
        "StartingSequenceNumber {} does not identify a record of shard {} in stream {}.",
        request.starting_sequence_number, shard_id, core.topic()));
  };
  if (n->position != n->record_index || n->position > uint64_t{INT64_MAX} - 1) {
    return not_a_record();
  }
  auto marks = core.Watermarks(partition);
  if (!marks.ok()) return marks.status();
  const auto offset = static_cast<int64_t>(n->position);
  // The shard's StartingSequenceNumber (offset 0) while the partition is still empty: AT and
  // AFTER both start there, as on a Stream of riffle's own.
  if (offset == 0 && marks->second == 0) return iterator(0);
  // An offset below the oldest was trimmed: the read starts at the oldest and reports the gap.
  if (offset >= marks->second) return not_a_record();
  return iterator(request.type == ShardIteratorType::kAfterSequenceNumber ? offset + 1 : offset);
}

absl::Status Stream::GetRecords(const ShardIterator& iterator, GetRecordsResult& out, int limit) {
  if (limit < 1 || limit > riffle::detail::kMaxGetRecordsLimit) {
    return riffle::detail::GetRecordsLimitError(limit);
  }
  detail::Core& core = *core_;
  const int64_t now_ms = core.clock().NowMillis();
  if (absl::Status s = core.CheckIterator(iterator, now_ms); !s.ok()) return s;
  using riffle::detail::RecordsStorage;
  RecordsStorage::Reset(out);
  const auto partition = static_cast<int32_t>(iterator.shard_index);
  const auto start = static_cast<int64_t>(iterator.position);
  int64_t expected = start;
  int64_t last_ms = 0;
  uint64_t missed = 0;
  absl::StatusOr<detail::ReaderPool::Outcome> read = core.readers().Read(
      partition, start, limit, riffle::detail::kMaxGetRecordsBytes, core.options().read_wait,
      [&](const rd_kafka_message_t& m) {
        // Offsets are record indexes: a gap is records the topic no longer holds.
        if (m.offset > expected) missed += static_cast<uint64_t>(m.offset - expected);
        expected = m.offset + 1;
        rd_kafka_timestamp_type_t type;
        last_ms = std::max<int64_t>(0, rd_kafka_message_timestamp(&m, &type));
        const auto offset = static_cast<uint64_t>(m.offset);
        RecordsStorage::AppendRecord(out, offset, offset, last_ms,
                                     std::string_view(static_cast<const char*>(m.key), m.key_len),
                                     std::string_view(static_cast<const char*>(m.payload), m.len));
      });
  if (!read.ok()) {
    RecordsStorage::Reset(out);
    return read.status();
  }
  RecordsStorage::BuildRecords(out, core.tag(), iterator.shard_index);
  out.missed_records = missed;
  if (!out.records.empty() && read->high_watermark > read->next_offset) {
    out.millis_behind_latest = std::max<int64_t>(0, now_ms - last_ms);
  }
  out.next_shard_iterator = core.MakeIterator(iterator.shard_index, read->next_offset, now_ms);
  return absl::OkStatus();
}

absl::StatusOr<GetRecordsResult> Stream::GetRecords(const ShardIterator& iterator, int limit) {
  GetRecordsResult result;
  if (absl::Status s = GetRecords(iterator, result, limit); !s.ok()) return s;
  return result;
}

absl::StatusOr<ShardIterator> Stream::RenewShardIterator(const ShardIterator& iterator) {
  detail::Core& core = *core_;
  if (!core.Issued(iterator)) {
    return InvalidArgumentError("Invalid ShardIterator.");
  }
  if (iterator.shard_index >= static_cast<uint64_t>(core.partitions())) {
    return ResourceNotFoundError(fmt::format("Shard {} in stream {} does not exist.",
                                             FormatShardId(iterator.shard_index), core.topic()));
  }
  return core.MakeIterator(iterator.shard_index, static_cast<int64_t>(iterator.position),
                           core.clock().NowMillis());
}

absl::StatusOr<std::vector<Shard>> Stream::ListShards(const ListShardsRequest& request) const {
  const detail::Core& core = *core_;
  absl::StatusOr<std::optional<uint64_t>> checked = riffle::detail::CheckListShardsRequest(request);
  if (!checked.ok()) return checked.status();
  const std::optional<uint64_t> after = *checked;
  // Every partition is open from the topic's creation on: every filter keeps them all.
  const std::vector<HashKeyRange> ranges = UniformHashKeyRanges(core.partitions());
  std::vector<Shard> shards;
  for (int i = 0; i < core.partitions(); ++i) {
    const auto index = static_cast<uint64_t>(i);
    if (after && index <= *after) continue;
    Shard s;
    s.shard_id = core.shard_id(i);
    s.hash_key_range = ranges[index];
    s.sequence_number_range.starting_sequence_number = SequenceNumber{core.tag(), index, 0, 0};
    shards.push_back(std::move(s));
  }
  return shards;
}

// ---- Resharding: refused ----

absl::Status Stream::SplitShard(std::string_view, std::string_view) {
  return Unsupported("SplitShard", name());
}
absl::Status Stream::MergeShards(std::string_view, std::string_view) {
  return Unsupported("MergeShards", name());
}
absl::StatusOr<UpdateShardCountResult> Stream::UpdateShardCount(int, ScalingType) {
  return Unsupported("UpdateShardCount", name());
}

}  // namespace riffle::kafka
