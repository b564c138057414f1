// The request and response shapes of the Kinesis Data Streams API that riffle::Kinesis
// (kinesis.h) serves, named as the API names them (<Operation>Input, <Operation>Output) and
// with the API's members in snake_case, so that code written against an AWS SDK maps onto
// them one to one. Shapes the Stream already has are reused: PutRecordsRequestEntry,
// PutRecordsResult, Shard, ChildShard, StartingPosition, ConsumerDescription,
// StreamDescriptionSummary, SequenceNumber.
//
// Strings in inputs are views: they must stay valid for the call only. Every operation that
// takes a StreamName also takes a StreamARN (either one, or both if they agree).
#ifndef RIFFLE_KINESIS_TYPES_H_
#define RIFFLE_KINESIS_TYPES_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "riffle/record_source.h"
#include "riffle/sequence_number.h"
#include "riffle/stream.h"
#include "riffle/subscription.h"

namespace riffle {

struct StreamModeDetails {
  StreamMode stream_mode = StreamMode::kProvisioned;
};

struct Tag {
  std::string key;    // 1..128 characters
  std::string value;  // 0..256 characters
};

// ---- Streams ----

struct CreateStreamInput {
  std::string_view stream_name;  // 1..128 of [a-zA-Z0-9_.-]
  // Required for PROVISIONED (the default mode); must be absent for ON_DEMAND, which starts
  // with 4 shards (docs/aws-account.md).
  std::optional<int> shard_count;
  std::optional<StreamModeDetails> stream_mode_details;
  std::span<const Tag> tags;  // 0..200 (at most 50 per stream)
  // riffle: ring size, routing, record size, ... for this stream instead of
  // AccountOptions::stream_defaults. Name, shard count, clock, region, account id and the
  // limits are always the account's.
  const StreamOptions* stream_options = nullptr;
};

struct DeleteStreamInput {
  std::string_view stream_name;
  std::string_view stream_arn;
  // Unset or false: a stream with registered consumers is ResourceInUseException.
  std::optional<bool> enforce_consumer_deletion;
};

struct DescribeStreamInput {
  std::string_view stream_name;
  std::string_view stream_arn;
  std::optional<int> limit;  // 1..10000; at most 100 shards are returned (default)
  std::string_view exclusive_start_shard_id;
};

struct EnhancedMetrics {
  std::vector<ShardLevelMetric> shard_level_metrics;
};

struct StreamDescription {
  std::string stream_name;
  std::string stream_arn;
  StreamStatus stream_status = StreamStatus::kActive;
  StreamModeDetails stream_mode_details;
  std::vector<Shard> shards;  // by shard id
  bool has_more_shards = false;
  int retention_period_hours = 24;
  absl::Time stream_creation_timestamp;
  std::vector<EnhancedMetrics> enhanced_monitoring;
  EncryptionType encryption_type = EncryptionType::kNone;
  std::string key_id;
};

struct DescribeStreamOutput {
  StreamDescription stream_description;
};

struct DescribeStreamSummaryInput {
  std::string_view stream_name;
  std::string_view stream_arn;
};

struct DescribeStreamSummaryOutput {
  StreamDescriptionSummary stream_description_summary;
};

struct ListStreamsInput {
  std::optional<int> limit;  // 1..10000; at most 100 streams are returned (default)
  std::string_view exclusive_start_stream_name;
  std::string_view next_token;  // from a previous ListStreams, within 300 s
};

struct StreamSummary {
  std::string stream_name;
  std::string stream_arn;
  StreamStatus stream_status = StreamStatus::kActive;
  StreamModeDetails stream_mode_details;
  absl::Time stream_creation_timestamp;
};

struct ListStreamsOutput {
  std::vector<std::string> stream_names;  // by name
  bool has_more_streams = false;
  std::string next_token;  // empty when there are no more
  std::vector<StreamSummary> stream_summaries;
};

struct DescribeLimitsOutput {
  int shard_limit = 0;
  int open_shard_count = 0;
  int on_demand_stream_count = 0;
  int on_demand_stream_count_limit = 0;
};

struct UpdateStreamModeInput {
  std::string_view stream_arn;  // required, as on the service
  StreamModeDetails stream_mode_details;
};

// ---- Shards ----

struct ShardFilter {
  ShardFilterType type = ShardFilterType::kFromTrimHorizon;
  std::string_view shard_id;            // AFTER_SHARD_ID
  std::optional<absl::Time> timestamp;  // AT_TIMESTAMP, FROM_TIMESTAMP
};

struct ListShardsInput {
  std::string_view stream_name;                         // not with next_token
  std::string_view stream_arn;                          // not with next_token
  std::string_view next_token;                          // from a previous ListShards, within 300 s
  std::string_view exclusive_start_shard_id;            // not with next_token
  std::optional<int> max_results;                       // 1..10000; at most 1000 returned (default)
  std::optional<absl::Time> stream_creation_timestamp;  // not with next_token
  std::optional<ShardFilter> shard_filter;              // not with next_token
};

struct ListShardsOutput {
  std::vector<Shard> shards;  // by shard id
  std::string next_token;     // empty when there are no more
};

struct SplitShardInput {
  std::string_view stream_name;
  std::string_view stream_arn;
  std::string_view shard_to_split;
  std::string_view new_starting_hash_key;
};

struct MergeShardsInput {
  std::string_view stream_name;
  std::string_view stream_arn;
  std::string_view shard_to_merge;
  std::string_view adjacent_shard_to_merge;
};

struct UpdateShardCountInput {
  std::string_view stream_name;
  std::string_view stream_arn;
  int target_shard_count = 0;
  ScalingType scaling_type = ScalingType::kUniformScaling;
};

struct UpdateShardCountOutput {
  std::string stream_name;
  int current_shard_count = 0;
  int target_shard_count = 0;
  std::string stream_arn;
};

struct IncreaseStreamRetentionPeriodInput {
  std::string_view stream_name;
  std::string_view stream_arn;
  int retention_period_hours = 0;
};

struct DecreaseStreamRetentionPeriodInput {
  std::string_view stream_name;
  std::string_view stream_arn;
  int retention_period_hours = 0;
};

// ---- Records ----

struct PutRecordInput {
  std::string_view stream_name;
  std::string_view stream_arn;
  std::string_view partition_key;
  std::string_view data;
  std::string_view explicit_hash_key;
  std::string_view sequence_number_for_ordering;
};

struct PutRecordOutput {
  // A view of the shard's id, valid as PutRecordResult::shard_id is: until the shard
  // expires (at least the retention period after the put) or the stream is gone. Copy it to
  // keep it longer.
  std::string_view shard_id;
  SequenceNumber sequence_number;
  EncryptionType encryption_type = EncryptionType::kNone;
};

struct PutRecordsInput {
  std::string_view stream_name;
  std::string_view stream_arn;
  std::span<const PutRecordsRequestEntry> records;
};

// FailedRecordCount and Records as PutRecordsResult has them; reuse one across calls.
struct PutRecordsOutput : PutRecordsResult {
  EncryptionType encryption_type = EncryptionType::kNone;
};

struct GetShardIteratorInput {
  std::string_view stream_name;
  std::string_view stream_arn;
  std::string_view shard_id;
  ShardIteratorType shard_iterator_type = ShardIteratorType::kTrimHorizon;
  std::string_view starting_sequence_number;  // AT_/AFTER_SEQUENCE_NUMBER
  std::optional<absl::Time> timestamp;        // AT_TIMESTAMP
};

struct GetShardIteratorOutput {
  std::string shard_iterator;  // opaque; valid 5 minutes on the account's clock
};

struct GetRecordsInput {
  std::string_view shard_iterator;  // as GetShardIterator or GetRecords handed it out
  std::optional<int> limit;         // 1..10000 (default 10000)
  std::string_view stream_arn;      // optional; must be the iterator's stream
};

// Reuse one per reader: a steady-state GetRecords into it allocates nothing.
struct GetRecordsOutput {
  // Records, MillisBehindLatest and ChildShards (and riffle's missed_records); its
  // next_shard_iterator is the parsed form of the string below.
  GetRecordsResult result;
  // NextShardIterator; empty (the service's null) once a closed shard was read to its end.
  std::string next_shard_iterator;
};

// ---- Enhanced fan-out consumers ----

struct RegisterStreamConsumerInput {
  std::string_view stream_arn;  // required, as on the service
  std::string_view consumer_name;
  RegisterStreamConsumerOptions options;  // riffle: lossless consumers
};

struct RegisterStreamConsumerOutput {
  ConsumerDescription consumer;
};

// Name the consumer by its ARN, or by the stream's ARN and its name.
struct DeregisterStreamConsumerInput {
  std::string_view stream_arn;
  std::string_view consumer_name;
  std::string_view consumer_arn;
};

struct DescribeStreamConsumerInput {
  std::string_view stream_arn;
  std::string_view consumer_name;
  std::string_view consumer_arn;
};

struct DescribeStreamConsumerOutput {
  ConsumerDescription consumer_description;
};

struct ListStreamConsumersInput {
  std::string_view stream_arn;  // required
  std::string_view next_token;
  std::optional<int> max_results;  // 1..10000; at most 100 returned (default)
  std::optional<absl::Time> stream_creation_timestamp;
};

struct ListStreamConsumersOutput {
  std::vector<ConsumerDescription> consumers;  // registration order
  std::string next_token;
};

struct SubscribeToShardInput {
  std::string_view consumer_arn;
  std::string_view shard_id;
  StartingPosition starting_position;
};

// ---- Tags ----

struct AddTagsToStreamInput {
  std::string_view stream_name;
  std::string_view stream_arn;
  std::span<const Tag> tags;  // 1..200
};

struct RemoveTagsFromStreamInput {
  std::string_view stream_name;
  std::string_view stream_arn;
  std::span<const std::string_view> tag_keys;  // 1..50
};

struct ListTagsForStreamInput {
  std::string_view stream_name;
  std::string_view stream_arn;
  std::string_view exclusive_start_tag_key;
  std::optional<int> limit;  // 1..50 (default 50)
};

struct ListTagsForStreamOutput {
  std::vector<Tag> tags;  // by key
  bool has_more_tags = false;
};

// ---- Encryption and enhanced monitoring (state kept and reported) ----

struct StartStreamEncryptionInput {
  std::string_view stream_name;
  std::string_view stream_arn;
  EncryptionType encryption_type = EncryptionType::kKms;  // KMS is the only valid value
  std::string_view key_id;                                // 1..2048
};

struct StopStreamEncryptionInput {
  std::string_view stream_name;
  std::string_view stream_arn;
  EncryptionType encryption_type = EncryptionType::kKms;
  std::string_view key_id;
};

struct EnableEnhancedMonitoringInput {
  std::string_view stream_name;
  std::string_view stream_arn;
  std::span<const ShardLevelMetric> shard_level_metrics;  // 1..7; kAll means every metric
};

using DisableEnhancedMonitoringInput = EnableEnhancedMonitoringInput;

struct EnhancedMonitoringOutput {
  std::string stream_name;
  std::vector<ShardLevelMetric> current_shard_level_metrics;  // before the call
  std::vector<ShardLevelMetric> desired_shard_level_metrics;  // after it
  std::string stream_arn;
};

}  // namespace riffle

#endif  // RIFFLE_KINESIS_TYPES_H_
