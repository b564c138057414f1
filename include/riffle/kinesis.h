// riffle::Kinesis: the Kinesis Data Streams API of an Account (account.h), by stream name
// and ARN. Each operation validates its members as the service does, then delegates to the
// account's riffle::Stream objects: there is no second implementation of a stream.
//
//   riffle::Kinesis& kinesis = account->kinesis();
//   (void)kinesis.CreateStream({.stream_name = "orders", .shard_count = 4});
//   std::vector<riffle::PutRecordsRequestEntry> batch = ...;
//   riffle::PutRecordsOutput put;  // reuse it: a steady-state PutRecords allocates nothing
//   absl::Status s = kinesis.PutRecords({.stream_name = "orders", .records = batch}, put);
//   auto it = kinesis.GetShardIterator({.stream_name = "orders",
//                                       .shard_id = "shardId-000000000000"});
//   riffle::GetRecordsOutput out;  // reuse it too
//   s = kinesis.GetRecords({.shard_iterator = it->shard_iterator}, out);
//   // out.result.records, out.next_shard_iterator (a string, as the service hands it out)
//
// Errors are the service's, worded as the service words them (docs/aws-account.md has the
// table): ValidationException for a member that breaks its constraint ("1 validation error
// detected: Value '' at 'streamName' failed to satisfy constraint: Member must have length
// greater than or equal to 1"), InvalidArgumentException, ResourceNotFoundException ("Stream
// orders under account 000000000000 not found."), ResourceInUseException,
// LimitExceededException, ProvisionedThroughputExceededException, ExpiredIteratorException,
// ExpiredNextTokenException; and whatever the account's FaultPlan injects.
//
// Thread safety: every method may be called from any thread. PutRecord, PutRecords and
// GetRecords by an existing stream take no lock while the limits are off.
#ifndef RIFFLE_KINESIS_H_
#define RIFFLE_KINESIS_H_

#include <memory>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "riffle/kinesis_types.h"
#include "riffle/stream.h"
#include "riffle/subscription.h"

namespace riffle {

namespace detail {
struct AccountCore;
class KinesisRegistry;
struct StreamEntry;
}  // namespace detail

class Kinesis {
 public:
  // Internal: use Account::kinesis().
  explicit Kinesis(detail::AccountCore& core);
  ~Kinesis();
  Kinesis(const Kinesis&) = delete;
  Kinesis& operator=(const Kinesis&) = delete;

  // ---- Streams ----
  // ResourceInUseException for a name in use; LimitExceededException beyond the shard
  // quota, the ON_DEMAND stream quota or (limits on) five streams CREATING at once.
  [[nodiscard]] absl::Status CreateStream(const CreateStreamInput& input);
  // Removes the stream (after AccountOptions::delete_duration); its iterators then fail
  // with ResourceNotFoundException and its subscriptions end (kStreamDeleted).
  [[nodiscard]] absl::Status DeleteStream(const DeleteStreamInput& input);
  [[nodiscard]] absl::StatusOr<DescribeStreamOutput> DescribeStream(
      const DescribeStreamInput& input);
  [[nodiscard]] absl::StatusOr<DescribeStreamSummaryOutput> DescribeStreamSummary(
      const DescribeStreamSummaryInput& input);
  [[nodiscard]] absl::StatusOr<ListStreamsOutput> ListStreams(const ListStreamsInput& input = {});
  [[nodiscard]] absl::StatusOr<DescribeLimitsOutput> DescribeLimits();
  // Switches PROVISIONED <-> ON_DEMAND (the open shards stay as they are).
  [[nodiscard]] absl::Status UpdateStreamMode(const UpdateStreamModeInput& input);
  [[nodiscard]] absl::Status IncreaseStreamRetentionPeriod(
      const IncreaseStreamRetentionPeriodInput& input);
  [[nodiscard]] absl::Status DecreaseStreamRetentionPeriod(
      const DecreaseStreamRetentionPeriodInput& input);

  // ---- Shards (PROVISIONED streams; ON_DEMAND ones are ValidationException) ----
  [[nodiscard]] absl::StatusOr<ListShardsOutput> ListShards(const ListShardsInput& input);
  [[nodiscard]] absl::Status SplitShard(const SplitShardInput& input);
  [[nodiscard]] absl::Status MergeShards(const MergeShardsInput& input);
  [[nodiscard]] absl::StatusOr<UpdateShardCountOutput> UpdateShardCount(
      const UpdateShardCountInput& input);

  // ---- Records ----
  [[nodiscard]] absl::StatusOr<PutRecordOutput> PutRecord(const PutRecordInput& input);
  // Fills `out` (replacing its contents); see Stream::PutRecords. Per-entry ErrorCode is
  // ProvisionedThroughputExceededException or InternalFailure, nothing else.
  [[nodiscard]] absl::Status PutRecords(const PutRecordsInput& input, PutRecordsOutput& out);
  [[nodiscard]] absl::StatusOr<PutRecordsOutput> PutRecords(const PutRecordsInput& input);
  [[nodiscard]] absl::StatusOr<GetShardIteratorOutput> GetShardIterator(
      const GetShardIteratorInput& input);
  // Reads by the iterator string GetShardIterator or GetRecords handed out; fills `out`.
  [[nodiscard]] absl::Status GetRecords(const GetRecordsInput& input, GetRecordsOutput& out);
  [[nodiscard]] absl::StatusOr<GetRecordsOutput> GetRecords(const GetRecordsInput& input);

  // ---- Enhanced fan-out ----
  [[nodiscard]] absl::StatusOr<RegisterStreamConsumerOutput> RegisterStreamConsumer(
      const RegisterStreamConsumerInput& input);
  [[nodiscard]] absl::Status DeregisterStreamConsumer(const DeregisterStreamConsumerInput& input);
  [[nodiscard]] absl::StatusOr<DescribeStreamConsumerOutput> DescribeStreamConsumer(
      const DescribeStreamConsumerInput& input);
  [[nodiscard]] absl::StatusOr<ListStreamConsumersOutput> ListStreamConsumers(
      const ListStreamConsumersInput& input);
  // Pushes the shard's records to `handler` (subscription.h); with the limits on, at most
  // 2 MiB/s, as the service.
  [[nodiscard]] absl::StatusOr<std::unique_ptr<Subscription>> SubscribeToShard(
      const SubscribeToShardInput& input, SubscribeToShardHandler handler,
      SubscriptionOptions options = {});

  // ---- Tags ----
  [[nodiscard]] absl::Status AddTagsToStream(const AddTagsToStreamInput& input);
  [[nodiscard]] absl::Status RemoveTagsFromStream(const RemoveTagsFromStreamInput& input);
  [[nodiscard]] absl::StatusOr<ListTagsForStreamOutput> ListTagsForStream(
      const ListTagsForStreamInput& input);

  // ---- Encryption and enhanced monitoring: the state is kept and reported ----
  [[nodiscard]] absl::Status StartStreamEncryption(const StartStreamEncryptionInput& input);
  [[nodiscard]] absl::Status StopStreamEncryption(const StopStreamEncryptionInput& input);
  [[nodiscard]] absl::StatusOr<EnhancedMonitoringOutput> EnableEnhancedMonitoring(
      const EnableEnhancedMonitoringInput& input);
  [[nodiscard]] absl::StatusOr<EnhancedMonitoringOutput> DisableEnhancedMonitoring(
      const DisableEnhancedMonitoringInput& input);

  // riffle: the Stream behind a name or ARN, for what reads a RecordSource (LineageReader,
  // Consumer, a DeliveryStream's source); nullptr when there is none (or it is CREATING).
  // Valid until the stream is deleted.
  Stream* FindStream(std::string_view name_or_arn);
  // riffle: the same, shared: the Stream stays alive (it gets no new records once deleted)
  // while a pointer to it is held. nullptr when there is none (or it is CREATING).
  std::shared_ptr<Stream> ShareStream(std::string_view name_or_arn);

 private:
  absl::Status DeleteStreamLocked(const DeleteStreamInput& input);
  absl::Status PutRecordsWithFaults(detail::StreamEntry& entry, const PutRecordsInput& input,
                                    PutRecordsOutput& out);
  // Accepted writes of an ON_DEMAND stream (limits on): may scale it up.
  void MeterWrites(detail::StreamEntry& entry, uint64_t bytes, uint64_t records);

  detail::AccountCore& core_;
  std::unique_ptr<detail::KinesisRegistry> registry_;
};

}  // namespace riffle

#endif  // RIFFLE_KINESIS_H_
