// riffle::Sqs: the SQS API of an Account (account.h), by queue name and queue URL. Queues
// are FIFO queues: every message operation delegates to the account's riffle::FifoQueue
// objects, so groups, deduplication, visibility, receive attempts and dead-letter moves
// behave exactly as docs/fifo.md describes. Standard queues are not served (CreateQueue
// answers UnsupportedOperation).
//
//   riffle::Sqs& sqs = account->sqs();
//   auto q = sqs.CreateQueue({.queue_name = "orders.fifo",
//                             .attributes = {{"FifoQueue", "true"},
//                                            {"ContentBasedDeduplication", "true"}}});
//   auto sent = sqs.SendMessage({.queue_url = q->queue_url, .message_body = "hello",
//                                .message_group_id = "user-7"});
//   // sent->md5_of_message_body == "5d41402abc4b2a76b9719d911017c592"
//   auto got = sqs.ReceiveMessage({.queue_url = q->queue_url, .max_number_of_messages = 10});
//   for (auto& m : got->messages)
//     (void)sqs.DeleteMessage({.queue_url = q->queue_url, .receipt_handle = m.receipt_handle});
//
// Errors carry the service's names (status.h; docs/aws-account.md has the table):
// QueueDoesNotExist for a URL that names no queue, QueueDeletedRecently, QueueNameExists,
// PurgeQueueInProgress, InvalidAttributeName, InvalidAttributeValue, InvalidParameterValue,
// MissingParameter, the batch errors, ReceiptHandleIsInvalid, UnsupportedOperation,
// ThrottlingException (AccountOptions::enforce_limits), and what the account's FaultPlan
// injects (operation names as the API's, resources by queue name or ARN).
//
// Thread safety: every method may be called from any thread. A long poll blocks only the
// calling thread.
#ifndef RIFFLE_SQS_H_
#define RIFFLE_SQS_H_

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "riffle/fifo_queue.h"
#include "riffle/sqs_types.h"

namespace riffle {

namespace detail {
struct AccountCore;
struct SqsRegistry;
struct SqsQueueEntry;
}  // namespace detail

// The digests SQS returns, as lower-case hex. MD5OfMessageBody: the MD5 of the body's bytes.
std::string Md5OfMessageBody(std::string_view body);
// MD5OfMessageAttributes (and MD5OfMessageSystemAttributes, over those): the attributes in
// name order, each as a 4-byte big-endian length and the name's bytes, the same for the
// DataType, one transport byte (1 for String and Number types, 2 for Binary), then the
// length and bytes of the value. Empty for no attributes (the service omits the member).
std::string Md5OfMessageAttributes(const MessageAttributes& attributes);

class Sqs {
 public:
  // Internal: use Account::sqs().
  explicit Sqs(detail::AccountCore& core);
  ~Sqs();
  Sqs(const Sqs&) = delete;
  Sqs& operator=(const Sqs&) = delete;

  // ---- Queues ----
  // An existing queue with the same attributes: its URL; with others: QueueNameExists. A
  // name deleted less than 60 s ago: QueueDeletedRecently.
  [[nodiscard]] absl::StatusOr<CreateQueueOutput> CreateQueue(const CreateQueueInput& input);
  [[nodiscard]] absl::StatusOr<GetQueueUrlOutput> GetQueueUrl(const GetQueueUrlInput& input);
  [[nodiscard]] absl::StatusOr<ListQueuesOutput> ListQueues(const ListQueuesInput& input = {});
  // The queue and its messages go at once; the name can be used again after 60 s.
  [[nodiscard]] absl::Status DeleteQueue(const DeleteQueueInput& input);
  // Deletes every message; one purge per queue per 60 s (PurgeQueueInProgress).
  [[nodiscard]] absl::Status PurgeQueue(const PurgeQueueInput& input);
  [[nodiscard]] absl::StatusOr<GetQueueAttributesOutput> GetQueueAttributes(
      const GetQueueAttributesInput& input);
  [[nodiscard]] absl::Status SetQueueAttributes(const SetQueueAttributesInput& input);
  [[nodiscard]] absl::Status TagQueue(const TagQueueInput& input);
  [[nodiscard]] absl::Status UntagQueue(const UntagQueueInput& input);
  [[nodiscard]] absl::StatusOr<ListQueueTagsOutput> ListQueueTags(const ListQueueTagsInput& input);

  // ---- Messages ----
  [[nodiscard]] absl::StatusOr<SendMessageOutput> SendMessage(const SendMessageInput& input);
  [[nodiscard]] absl::StatusOr<SendMessageBatchOutput> SendMessageBatch(
      const SendMessageBatchInput& input);
  [[nodiscard]] absl::StatusOr<ReceiveMessageOutput> ReceiveMessage(
      const ReceiveMessageInput& input);
  [[nodiscard]] absl::Status DeleteMessage(const DeleteMessageInput& input);
  [[nodiscard]] absl::StatusOr<BatchResult> DeleteMessageBatch(
      const DeleteMessageBatchInput& input);
  [[nodiscard]] absl::Status ChangeMessageVisibility(const ChangeMessageVisibilityInput& input);
  [[nodiscard]] absl::StatusOr<BatchResult> ChangeMessageVisibilityBatch(
      const ChangeMessageVisibilityBatchInput& input);

  // https://sqs.<region>.amazonaws.com/<account id>/<name>
  std::string QueueUrl(std::string_view queue_name) const;
  // arn:aws:sqs:<region>:<account id>:<name>
  std::string QueueArn(std::string_view queue_name) const;

 private:
  // The queue a URL names (QueueDoesNotExist, MissingParameter), then the call rate and
  // the faults of `operation` (with `group` for the per-group rates of high-throughput
  // queues).
  absl::StatusOr<std::shared_ptr<detail::SqsQueueEntry>> Admit(
      std::string_view operation, std::string_view queue_url,
      std::span<const std::string_view> groups = {});

  detail::AccountCore& core_;
  std::unique_ptr<detail::SqsRegistry> registry_;
};

}  // namespace riffle

#endif  // RIFFLE_SQS_H_
