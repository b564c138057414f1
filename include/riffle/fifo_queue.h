// FifoQueue: SQS FIFO queue semantics in process. Messages carry a MessageGroupId; order is
// strict within a group and free across groups; consumption is destructive (receive, then
// delete with the receipt handle). While a message of a group is in flight (received, not
// deleted, visibility timeout not over) no later message of that group is handed out, so
// competing consumers process each group one message batch at a time.
//
//   auto queue = riffle::FifoQueue::Create({.name = "orders.fifo"}).value();
//   auto sent = queue->SendMessage({.message_group_id = "user-7", .message_body = "...",
//                                   .message_deduplication_id = "order-123"});
//   auto received = queue->ReceiveMessage({.max_number_of_messages = 10});
//   for (auto& m : received->messages) (void)queue->DeleteMessage(m.receipt_handle);
//
// Hot loops reuse their storage: SendMessage(request, out) and ReceiveMessage(request, out)
// fill the caller's result and allocate nothing in steady state. Batches take a
// std::span (a std::vector converts).
//
// Semantics and limits follow SQS (docs/fifo.md lists them with the few differences):
// deduplication for 5 minutes, per-receive receipt handles, ReceiveRequestAttemptId
// retries, dead-letter redrive after maxReceiveCount receives, retention, queue delay.
// Errors carry the service's names, each a constant in riffle/status.h (test them with
// riffle::HasErrorName(status, riffle::kReceiptHandleIsInvalid)): InvalidParameterValue,
// MissingParameter, ReceiptHandleIsInvalid, MessageNotInflight, InvalidMessageContents,
// TooManyEntriesInBatchRequest, BatchEntryIdsNotDistinct, EmptyBatchRequest,
// InvalidBatchEntryId, BatchRequestTooLong, InvalidAttributeValue.
//
// Thread safety: every method may be called from any number of threads at once. No thread
// is started; timeouts are applied lazily by the calls themselves, and long polls block on
// a condition variable woken by sends, deletes and (for a ManualClock) clock moves. Sends
// never wait behind receives (docs/fifo.md explains the two locks).
// REQUIRED: the Clock and the dead-letter queue outlive the queue, and no call is in
// progress when it is destroyed.
#ifndef RIFFLE_FIFO_QUEUE_H_
#define RIFFLE_FIFO_QUEUE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "riffle/clock.h"
#include "riffle/status.h"

namespace riffle {

class FifoQueue;

// Where deduplication ids are unique: the whole queue (SQS default), or each message group
// (SQS high-throughput mode, DeduplicationScope=messageGroup).
enum class DeduplicationScope { kQueue, kMessageGroup };

// Moves a message to `dead_letter_queue` when it would be received more than
// `max_receive_count` times. The moved message keeps its group id, body, attributes,
// deduplication id, message id and SentTimestamp; it gets a new sequence number and its
// retention starts again (as SQS does for FIFO queues).
struct RedrivePolicy {
  // REQUIRED, not owned: must outlive this queue (debug builds assert it). The type makes
  // the dead-letter queue a FIFO queue, as SQS requires.
  FifoQueue* dead_letter_queue = nullptr;
  int max_receive_count = 10;  // 1..1000.
};

struct FifoQueueOptions {
  // REQUIRED: 1..80 characters of [A-Za-z0-9_-], ending in ".fifo".
  std::string name{};
  // How long a received message stays invisible. Default 30 s; 0..43,200.
  int visibility_timeout_seconds = 30;
  // How long an unreceived or undeleted message is kept. Default 4 days; 60..1,209,600.
  int message_retention_period_seconds = 345'600;
  // Largest body plus message attributes, in bytes. Default 256 KiB; 1,024..1,048,576.
  int maximum_message_size = 262'144;
  // Delay before a sent message becomes visible. Default 0; 0..900. FIFO queues have no
  // per-message delay.
  int delay_seconds = 0;
  // Default wait of a ReceiveMessage that does not give one. Default 0; 0..20.
  int receive_message_wait_time_seconds = 0;
  // Without an explicit MessageDeduplicationId, deduplicate on the SHA-256 of the body.
  // Default off: every send must then carry a MessageDeduplicationId.
  bool content_based_deduplication = false;
  // Default kQueue.
  DeduplicationScope deduplication_scope = DeduplicationScope::kQueue;
  // Default none: messages are redelivered without limit until retention removes them.
  std::optional<RedrivePolicy> redrive_policy{};
  // Optional, not owned: must outlive this queue. nullptr means SystemClock::Default().
  Clock* clock = nullptr;
};

// A message attribute. data_type is "String", "Number" or "Binary", optionally followed by
// ".label"; String and Number use string_value, Binary uses binary_value.
struct MessageAttributeValue {
  std::string data_type{};
  std::string string_value{};
  std::string binary_value{};
  friend bool operator==(const MessageAttributeValue&, const MessageAttributeValue&) = default;
};
using MessageAttributes = std::map<std::string, MessageAttributeValue>;

// Views: the strings only need to live for the duration of the call.
struct SendMessageRequest {
  std::string_view message_group_id{};  // REQUIRED: 1..128 of [!-~] (alphanumerics, punctuation).
  std::string_view message_body{};      // REQUIRED: 1 byte .. maximum_message_size, XML chars.
  // REQUIRED unless the queue has content_based_deduplication; same characters as the group.
  std::optional<std::string_view> message_deduplication_id{};
  MessageAttributes message_attributes{};  // Up to 10.
  // Rejected unless 0: FIFO queues have only the queue-level delay. Kept so ported code
  // gets the service's error.
  std::optional<int> delay_seconds{};
  // The message system attribute AWSTraceHeader (an X-Ray trace header), returned with the
  // message. Not counted in the message size, as in SQS; non-empty, message characters.
  std::optional<std::string_view> aws_trace_header{};
};

struct SendMessageResult {
  std::string message_id{};       // UUID-like, 36 characters.
  std::string sequence_number{};  // 20-digit decimal, increasing within a group.
};

struct SendMessageBatchRequestEntry {
  std::string_view id{};  // REQUIRED: 1..80 of [A-Za-z0-9_-], distinct within the batch.
  std::string_view message_group_id{};
  std::string_view message_body{};
  std::optional<std::string_view> message_deduplication_id{};
  MessageAttributes message_attributes{};
  std::optional<int> delay_seconds{};
  std::optional<std::string_view> aws_trace_header{};
};

struct SendMessageBatchResultEntry {
  std::string id{};
  std::string message_id{};
  std::string sequence_number{};
};

// One failed entry of a batch call (SQS BatchResultErrorEntry).
struct BatchResultErrorEntry {
  std::string id{};
  std::string code{};  // The error name, e.g. riffle::kReceiptHandleIsInvalid.
  std::string message{};
  bool sender_fault = true;
};

struct SendMessageBatchResult {
  std::vector<SendMessageBatchResultEntry> successful{};  // In request order.
  std::vector<BatchResultErrorEntry> failed{};            // In request order.
};

struct ReceiveMessageRequest {
  int max_number_of_messages = 1;           // 1..10.
  std::optional<int> visibility_timeout{};  // Seconds, 0..43,200; default the queue's.
  std::optional<int> wait_time_seconds{};   // 0..20; default the queue's.
  // Optional: 1..128 of [!-~]. A retry with the same id within 5 minutes returns the same
  // messages and receipt handles (restarting their visibility timeout) until one of them is
  // deleted, has its visibility changed or becomes visible again; then it receives afresh.
  std::string_view receive_request_attempt_id{};
};

struct Message {
  std::string message_id{};
  std::string receipt_handle{};  // Changes on every receive.
  std::string body{};
  MessageAttributes message_attributes{};
  // System attributes.
  std::string message_group_id{};
  std::string message_deduplication_id{};
  std::string sequence_number{};
  int approximate_receive_count = 0;                // Including this receive.
  int64_t sent_timestamp = 0;                       // Milliseconds since the Unix epoch.
  int64_t approximate_first_receive_timestamp = 0;  // Milliseconds since the Unix epoch.
  std::string aws_trace_header{};                   // Empty when the sender gave none.
  // The name of the queue whose redrive policy moved the message here (this queue is its
  // dead-letter queue); empty for a message sent here.
  std::string dead_letter_source_queue{};
};

struct ReceiveMessageResult {
  std::vector<Message> messages{};
};

struct DeleteMessageBatchRequestEntry {
  std::string_view id{};
  std::string_view receipt_handle{};
};

struct ChangeMessageVisibilityBatchRequestEntry {
  std::string_view id{};
  std::string_view receipt_handle{};
  int visibility_timeout = 0;
};

// Successful ids of DeleteMessageBatch / ChangeMessageVisibilityBatch.
struct BatchResult {
  std::vector<std::string> successful{};
  std::vector<BatchResultErrorEntry> failed{};
};

// GetQueueAttributes: the counters are exact as of the call (they are "approximate" in SQS).
struct QueueAttributes {
  int64_t approximate_number_of_messages = 0;              // Visible, waiting to be received.
  int64_t approximate_number_of_messages_not_visible = 0;  // In flight.
  int64_t approximate_number_of_messages_delayed = 0;      // Within the queue delay.
  int64_t created_timestamp = 0;                           // Seconds since the Unix epoch.
};

class FifoQueue {
 public:
  // Validates `options` (InvalidParameterValue for the name, InvalidAttributeValue for a
  // value out of range or a bad redrive policy).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<FifoQueue>> Create(FifoQueueOptions options);

  ~FifoQueue();
  FifoQueue(const FifoQueue&) = delete;
  FifoQueue& operator=(const FifoQueue&) = delete;

  const std::string& name() const;

  // A duplicate (same deduplication id within 5 minutes, in the queue's scope) succeeds
  // with the original's message id and sequence number and is not enqueued again.
  [[nodiscard]] absl::StatusOr<SendMessageResult> SendMessage(const SendMessageRequest& request);
  // The same into `out`, reusing its buffers: no allocation in steady state.
  [[nodiscard]] absl::Status SendMessage(const SendMessageRequest& request, SendMessageResult& out);
  // 1..10 entries with distinct ids; total size <= maximum_message_size. Entries fail
  // one by one (in `failed`), the others are sent in request order.
  [[nodiscard]] absl::StatusOr<SendMessageBatchResult> SendMessageBatch(
      std::span<const SendMessageBatchRequestEntry> entries);

  // Up to max_number_of_messages visible messages, taken from one group first, in order,
  // then from the next group. Waits up to wait_time_seconds for the first message.
  [[nodiscard]] absl::StatusOr<ReceiveMessageResult> ReceiveMessage(
      const ReceiveMessageRequest& request);
  // The same into `out` (resized to the messages received), reusing its elements' buffers.
  [[nodiscard]] absl::Status ReceiveMessage(const ReceiveMessageRequest& request,
                                            std::vector<Message>& out);

  // Acts on the current receipt handle of a message in flight only, as SQS does for a FIFO
  // queue: a handle this queue made whose visibility timeout ended, whose message was
  // received again or is gone is InvalidParameterValue ("... The receipt handle has
  // expired."; in a batch, the entry's ReceiptHandleIsInvalid "The receipt handle has
  // expired"); a string no receive of this queue made is ReceiptHandleIsInvalid.
  [[nodiscard]] absl::Status DeleteMessage(std::string_view receipt_handle);
  [[nodiscard]] absl::StatusOr<BatchResult> DeleteMessageBatch(
      std::span<const DeleteMessageBatchRequestEntry> entries);

  // Sets the visibility of an in-flight message to `visibility_timeout` seconds from now
  // (0..43,200, and at most 12 hours after the receive). 0 makes it visible at once.
  // MessageNotInflight when its visibility already ended. A change that succeeds also ends
  // the ReceiveRequestAttemptId retry of the receive that returned the message.
  [[nodiscard]] absl::Status ChangeMessageVisibility(std::string_view receipt_handle,
                                                     int visibility_timeout);
  [[nodiscard]] absl::StatusOr<BatchResult> ChangeMessageVisibilityBatch(
      std::span<const ChangeMessageVisibilityBatchRequestEntry> entries);

  QueueAttributes GetQueueAttributes();

  // The queue's attributes now (FifoQueueOptions with the values in force).
  FifoQueueOptions attributes() const;
  // Replaces every attribute but the name and the clock (which stay) with those of
  // `options`, validated as Create does. Messages already sent keep their deduplication
  // entries; a new DelaySeconds applies to messages still delayed as well (as in SQS,
  // where the queue delay of a FIFO queue is retroactive); a new retention applies to every
  // message. A redrive policy that would make a loop of dead-letter queues (this queue
  // included) is InvalidAttributeValue.
  [[nodiscard]] absl::Status SetAttributes(const FifoQueueOptions& options);

  // Deletes every message, in flight or not, and forgets the deduplication ids (as the
  // service does): a message sent again after a purge is delivered.
  void PurgeQueue();

 private:
  struct Impl;
  explicit FifoQueue(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_{};
};

}  // namespace riffle

#endif  // RIFFLE_FIFO_QUEUE_H_
