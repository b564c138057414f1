// The request and response shapes of the Amazon Data Firehose API that riffle::Firehose
// (firehose.h) serves, named as the API names them (<Operation>Input, <Operation>Output)
// with the API's members in snake_case. PutRecord's shapes are FirehosePutRecordInput and
// FirehosePutRecordOutput, since Kinesis' PutRecordInput/Output have those names here.
// What the service configures with a Lambda function or a jq query is a C++ function
// (the DeliveryStream's Processor and PartitionKeyFunction, delivery_stream.h).
//
// Strings in inputs are views: they must stay valid for the call only.
#ifndef RIFFLE_FIREHOSE_TYPES_H_
#define RIFFLE_FIREHOSE_TYPES_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "riffle/delivery_stream.h"
#include "riffle/kinesis_types.h"  // riffle::Tag

namespace riffle {

enum class DeliveryStreamType { kDirectPut, kKinesisStreamAsSource };
// "DirectPut", "KinesisStreamAsSource".
std::string_view DeliveryStreamTypeName(DeliveryStreamType type);

struct KinesisStreamSourceConfiguration {
  // REQUIRED: arn:aws:kinesis:<region>:<account>:stream/<name>, a stream of this account.
  std::string_view kinesis_stream_arn;
  std::string_view role_arn;  // kept and described; there is no IAM
};

// The Lambda processor of the service: here a function called with each batch.
struct ProcessingConfiguration {
  bool enabled = false;
  Processor processor;  // REQUIRED when enabled
  // The service's AppendDelimiterToRecord processor: '\n' after every delivered record.
  bool append_delimiter_to_record = false;
  // The Lambda processor's NumberOfRetries parameter, 0..300 (default 3): calls made again
  // when `processor` throws, before the batch goes to the error output
  // (DeliveryStreamOptions::processor_retries).
  std::optional<int> number_of_retries;
  // The Lambda processor's LambdaArn parameter: kept, and written as lambdaArn in the
  // processing-failed records of the error output (DeliveryStreamOptions::processor_arn).
  std::string_view lambda_arn;
};

// Dynamic partitioning: the Prefix names !{partitionKeyFromQuery:k} (or ...FromLambda) keys,
// whose values `partition_key_function` gives (the service's jq query or Lambda).
struct DynamicPartitioningConfiguration {
  bool enabled = false;
  PartitionKeyFunction partition_key_function;   // REQUIRED when enabled
  std::optional<int> retry_duration_in_seconds;  // RetryOptions.DurationInSeconds, 0..7200
};

struct ExtendedS3DestinationConfiguration {
  std::string_view role_arn;    // kept and described
  std::string_view bucket_arn;  // REQUIRED: arn:aws:s3:::<bucket>, a bucket of this account
  std::string_view prefix;      // 0..1024; DeliveryStreamOptions::prefix
  std::string_view error_output_prefix;           // 0..1024
  std::optional<BufferingHints> buffering_hints;  // SizeInMBs 1..128, IntervalInSeconds 0..900
  // UNCOMPRESSED (default), GZIP, ZIP, Snappy or HADOOP_SNAPPY.
  std::string_view compression_format = "UNCOMPRESSED";
  ProcessingConfiguration processing_configuration;
  DynamicPartitioningConfiguration dynamic_partitioning_configuration;
};

struct CreateDeliveryStreamInput {
  std::string_view delivery_stream_name;  // 1..64 of [a-zA-Z0-9_.-]
  DeliveryStreamType delivery_stream_type = DeliveryStreamType::kDirectPut;
  // REQUIRED for KinesisStreamAsSource; refused for DirectPut.
  std::optional<KinesisStreamSourceConfiguration> kinesis_stream_source_configuration;
  // REQUIRED (riffle serves the extended S3 destination only).
  std::optional<ExtendedS3DestinationConfiguration> extended_s3_destination_configuration;
  std::span<const Tag> tags;  // 0..50
  // riffle: what the service does not configure (compression level, backpressure bound,
  // random seed for object keys, the Stream source's poll interval, retry backoff, ...).
  // The account sets the name, source, sink, clock and everything the members above name.
  const DeliveryStreamOptions* delivery_stream_options = nullptr;
  // riffle: deliver on a thread of the delivery stream's own (DeliveryStream::Start),
  // instead of the host's Firehose::Poll calls; it starts at once, even while CREATING.
  // Default false.
  bool own_thread = false;
};

struct CreateDeliveryStreamOutput {
  std::string delivery_stream_arn;
};

struct DeleteDeliveryStreamInput {
  std::string_view delivery_stream_name;
  std::optional<bool> allow_force_delete;  // accepted; there is no KMS key to force past
};

struct DescribeDeliveryStreamInput {
  std::string_view delivery_stream_name;
  std::optional<int> limit;                         // 1..10000 destinations
  std::string_view exclusive_start_destination_id;  // 1..100 characters
};

struct KinesisStreamSourceDescription {
  std::string kinesis_stream_arn;
  std::string role_arn;
  absl::Time delivery_start_timestamp;  // the stream is read from LATEST as of this time
};

// The S3 destination's encryption: the service reports NoEncryptionConfig "NoEncryption"
// when none was configured (riffle configures none).
struct EncryptionConfiguration {
  std::string no_encryption_config = "NoEncryption";
};

struct ExtendedS3DestinationDescription {
  std::string role_arn;
  std::string bucket_arn;
  std::string prefix;
  std::string error_output_prefix;
  BufferingHints buffering_hints;
  std::string compression_format;
  EncryptionConfiguration encryption_configuration;
  std::string s3_backup_mode = "Disabled";  // riffle keeps no backup copy
  bool processing_enabled = false;
  bool dynamic_partitioning_enabled = false;
};

struct DestinationDescription {
  std::string destination_id;  // "destinationId-000000000001"
  ExtendedS3DestinationDescription extended_s3_destination_description;
};

struct DeliveryStreamDescription {
  std::string delivery_stream_name;
  std::string delivery_stream_arn;
  DeliveryStreamStatus delivery_stream_status = DeliveryStreamStatus::kActive;
  DeliveryStreamType delivery_stream_type = DeliveryStreamType::kDirectPut;
  std::string version_id = "1";  // one more after each UpdateDestination
  absl::Time create_timestamp;
  std::optional<absl::Time> last_update_timestamp;       // set by UpdateDestination
  std::optional<KinesisStreamSourceDescription> source;  // KinesisStreamAsSource only
  std::vector<DestinationDescription> destinations;
  bool has_more_destinations = false;
};

// The members UpdateDestination changes; those left empty keep their values (the service
// merges an update of the same destination type into the destination).
struct ExtendedS3DestinationUpdate {
  std::optional<std::string_view> role_arn;
  std::optional<std::string_view> bucket_arn;  // a bucket of this account
  std::optional<std::string_view> prefix;      // 0..1024
  std::optional<std::string_view> error_output_prefix;
  std::optional<BufferingHints> buffering_hints;
  std::optional<std::string_view> compression_format;
  // Replaces the processing configuration as a whole.
  std::optional<ProcessingConfiguration> processing_configuration;
  // Dynamic partitioning cannot be turned on or off on an existing delivery stream (the
  // service's rule), nor can riffle change its function: only its current `enabled` value,
  // with no function, is accepted.
  std::optional<DynamicPartitioningConfiguration> dynamic_partitioning_configuration;
};

struct UpdateDestinationInput {
  std::string_view delivery_stream_name;
  // REQUIRED: the VersionId DescribeDeliveryStream reports; another one is refused with
  // ConcurrentModificationException.
  std::string_view current_delivery_stream_version_id;
  std::string_view destination_id;  // REQUIRED: "destinationId-000000000001"
  std::optional<ExtendedS3DestinationUpdate> extended_s3_destination_update;  // REQUIRED
};

struct UpdateDestinationOutput {};

struct DescribeDeliveryStreamOutput {
  DeliveryStreamDescription delivery_stream_description;
};

struct ListDeliveryStreamsInput {
  std::optional<int> limit;                                // 1..10000; default 10
  std::optional<DeliveryStreamType> delivery_stream_type;  // default: every type
  std::string_view exclusive_start_delivery_stream_name;   // 1..64
};

struct ListDeliveryStreamsOutput {
  std::vector<std::string> delivery_stream_names;  // by name
  bool has_more_delivery_streams = false;
};

struct FirehoseRecord {
  std::string_view data;  // 0..1,024,000 bytes
};

struct FirehosePutRecordInput {
  std::string_view delivery_stream_name;
  FirehoseRecord record;
};

struct FirehosePutRecordOutput {
  std::string record_id;
  bool encrypted = false;
};

struct PutRecordBatchInput {
  std::string_view delivery_stream_name;
  std::span<const FirehoseRecord> records;  // 1..500, 4 MiB in all
};

struct PutRecordBatchResponseEntryOutput {
  std::string record_id;      // set when accepted
  std::string error_code;     // "" when accepted; ServiceUnavailableException when throttled
  std::string error_message;  // "" when accepted
};

struct PutRecordBatchOutput {
  int failed_put_count = 0;
  bool encrypted = false;
  std::vector<PutRecordBatchResponseEntryOutput> request_responses;  // one per record, in order
};

struct TagDeliveryStreamInput {
  std::string_view delivery_stream_name;
  std::span<const Tag> tags;  // 1..50
};

struct UntagDeliveryStreamInput {
  std::string_view delivery_stream_name;
  std::span<const std::string_view> tag_keys;  // 1..50
};

struct ListTagsForDeliveryStreamInput {
  std::string_view delivery_stream_name;
  std::string_view exclusive_start_tag_key;  // 1..128
  std::optional<int> limit;                  // 1..50; default 50
};

struct ListTagsForDeliveryStreamOutput {
  std::vector<Tag> tags;  // by key
  bool has_more_tags = false;
};

}  // namespace riffle

#endif  // RIFFLE_FIREHOSE_TYPES_H_
