// Requests and responses of the SQS API of an Account (riffle/sqs.h), named as the API
// names its shapes (<Operation>Input / <Operation>Output where the API has a request and
// a result) with the members in snake_case. Queue attributes and tags are string maps, as
// on the service: {"VisibilityTimeout", "60"}. Views in an input only need to live for the
// call.
#ifndef RIFFLE_SQS_TYPES_H_
#define RIFFLE_SQS_TYPES_H_

#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "riffle/fifo_queue.h"

namespace riffle {

// QueueAttributeName -> value, as the API passes them ("VisibilityTimeout" -> "30").
using SqsAttributeMap = std::map<std::string, std::string>;
// Tag key -> value.
using SqsTagMap = std::map<std::string, std::string>;

// ---- Queues ----

struct CreateQueueInput {
  // 1..80 characters of [A-Za-z0-9_-]; a FIFO queue's name ends in ".fifo" (counted).
  std::string_view queue_name{};
  // FifoQueue ("true": required, riffle serves FIFO queues), VisibilityTimeout,
  // MessageRetentionPeriod, DelaySeconds, ReceiveMessageWaitTimeSeconds,
  // MaximumMessageSize, RedrivePolicy, RedriveAllowPolicy, ContentBasedDeduplication,
  // DeduplicationScope, FifoThroughputLimit, Policy, KmsMasterKeyId,
  // KmsDataKeyReusePeriodSeconds, SqsManagedSseEnabled.
  SqsAttributeMap attributes{};
  SqsTagMap tags{};
};
struct CreateQueueOutput {
  std::string queue_url{};  // https://sqs.<region>.amazonaws.com/<account>/<name>
};

struct GetQueueUrlInput {
  std::string_view queue_name{};
  // Empty or the account's own id (there are no other accounts here).
  std::string_view queue_owner_aws_account_id{};
};
struct GetQueueUrlOutput {
  std::string queue_url{};
};

struct ListQueuesInput {
  std::string_view queue_name_prefix{};  // empty: every queue
  // 1..1000. Without it the call returns up to 1,000 URLs and no token, as the service.
  std::optional<int> max_results{};
  std::string_view next_token{};
};
struct ListQueuesOutput {
  std::vector<std::string> queue_urls{};  // in name order
  std::string next_token{};               // empty: no more
};

struct DeleteQueueInput {
  std::string_view queue_url{};
};
struct PurgeQueueInput {
  std::string_view queue_url{};
};

struct GetQueueAttributesInput {
  std::string_view queue_url{};
  // "All", or names: the settable ones above plus QueueArn, ApproximateNumberOfMessages,
  // ApproximateNumberOfMessagesNotVisible, ApproximateNumberOfMessagesDelayed,
  // CreatedTimestamp, LastModifiedTimestamp. Empty: no attributes.
  std::vector<std::string> attribute_names{};
};
struct GetQueueAttributesOutput {
  SqsAttributeMap attributes{};
};

struct SetQueueAttributesInput {
  std::string_view queue_url{};
  // The settable attributes (not FifoQueue). An empty RedrivePolicy or RedriveAllowPolicy
  // removes it.
  SqsAttributeMap attributes{};
};

struct TagQueueInput {
  std::string_view queue_url{};
  SqsTagMap tags{};
};
struct UntagQueueInput {
  std::string_view queue_url{};
  std::vector<std::string> tag_keys{};
};
struct ListQueueTagsInput {
  std::string_view queue_url{};
};
struct ListQueueTagsOutput {
  SqsTagMap tags{};
};

// ---- Messages ----

struct SendMessageInput {
  std::string_view queue_url{};
  std::string_view message_body{};
  // FIFO queues refuse a per-message delay other than 0 (InvalidParameterValue), as the
  // service.
  std::optional<int> delay_seconds{};
  MessageAttributes message_attributes{};
  // Only AWSTraceHeader (DataType String), as on the service.
  MessageAttributes message_system_attributes{};
  std::optional<std::string_view> message_deduplication_id{};
  std::string_view message_group_id{};
};
struct SendMessageOutput {
  std::string md5_of_message_body{};               // lower-case hex
  std::string md5_of_message_attributes{};         // empty when the message has none
  std::string md5_of_message_system_attributes{};  // empty when the message has none
  std::string message_id{};
  std::string sequence_number{};
};

struct SendMessageBatchInputEntry {
  std::string_view id{};  // 1..80 of [A-Za-z0-9_-], distinct within the batch
  std::string_view message_body{};
  std::optional<int> delay_seconds{};
  MessageAttributes message_attributes{};
  MessageAttributes message_system_attributes{};
  std::optional<std::string_view> message_deduplication_id{};
  std::string_view message_group_id{};
};
struct SendMessageBatchInput {
  std::string_view queue_url{};
  std::span<const SendMessageBatchInputEntry> entries{};
};
struct SendMessageBatchOutputEntry {
  std::string id{};
  std::string message_id{};
  std::string md5_of_message_body{};
  std::string md5_of_message_attributes{};
  std::string md5_of_message_system_attributes{};
  std::string sequence_number{};
};
struct SendMessageBatchOutput {
  std::vector<SendMessageBatchOutputEntry> successful{};  // in request order
  std::vector<BatchResultErrorEntry> failed{};            // in request order
};

struct ReceiveMessageInput {
  std::string_view queue_url{};
  // System attributes to return: "All" or SenderId, SentTimestamp, ApproximateReceiveCount,
  // ApproximateFirstReceiveTimestamp, SequenceNumber, MessageDeduplicationId,
  // MessageGroupId, AWSTraceHeader. `attribute_names` is the API's older member for the
  // same; both count, and queue attribute names in it are accepted and ignored.
  std::vector<std::string> message_system_attribute_names{};
  std::vector<std::string> attribute_names{};
  // Message attributes to return: "All" or ".*", "<prefix>.*", or names.
  std::vector<std::string> message_attribute_names{};
  int max_number_of_messages = 1;           // 1..10
  std::optional<int> visibility_timeout{};  // 0..43,200; default the queue's
  std::optional<int> wait_time_seconds{};   // 0..20; default the queue's
  std::string_view receive_request_attempt_id{};
};
struct SqsMessage {
  std::string message_id{};
  std::string receipt_handle{};
  std::string md5_of_body{};
  std::string body{};
  SqsAttributeMap attributes{};             // the requested system attributes
  std::string md5_of_message_attributes{};  // of the returned ones; empty when none
  MessageAttributes message_attributes{};   // the requested ones
};
struct ReceiveMessageOutput {
  std::vector<SqsMessage> messages{};
};

struct DeleteMessageInput {
  std::string_view queue_url{};
  std::string_view receipt_handle{};
};
struct DeleteMessageBatchInput {
  std::string_view queue_url{};
  std::span<const DeleteMessageBatchRequestEntry> entries{};
};

struct ChangeMessageVisibilityInput {
  std::string_view queue_url{};
  std::string_view receipt_handle{};
  int visibility_timeout = 0;  // 0..43,200
};
struct ChangeMessageVisibilityBatchInput {
  std::string_view queue_url{};
  std::span<const ChangeMessageVisibilityBatchRequestEntry> entries{};
};

}  // namespace riffle

#endif  // RIFFLE_SQS_TYPES_H_
