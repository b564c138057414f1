// SQS message operations by queue URL: each delegates to the queue's riffle::FifoQueue and
// adds what the service adds around it: the digests (MD5OfMessageBody,
// MD5OfMessageAttributes, MD5OfMessageSystemAttributes), the message system attribute
// AWSTraceHeader, and the selection of the attributes a receive returns.
#include <algorithm>
#include <array>

#include "account/account_core.h"
#include "account/sqs_internal.h"
#include "fifo/fifo_text.h"
#include "fmt/format.h"
#include "riffle/sqs.h"
#include "riffle/status.h"

namespace riffle {

using detail::SqsQueueEntry;

namespace {

constexpr std::string_view kTraceHeader = "AWSTraceHeader";
constexpr std::string_view kDeadLetterSource = "DeadLetterQueueSourceArn";

// MessageSystemAttributes of a send: only AWSTraceHeader, of type String.
absl::Status TraceHeaderOf(const MessageAttributes& system,
                           std::optional<std::string_view>* trace) {
  for (const auto& [name, value] : system) {
    if (name != kTraceHeader) {
      return MakeError(absl::StatusCode::kInvalidArgument, kInvalidParameterValue,
                       fmt::format("Message system attribute name {} is invalid; the only "
                                   "supported one is AWSTraceHeader.",
                                   name.substr(0, 256)));
    }
    if (value.data_type != "String") {
      return MakeError(absl::StatusCode::kInvalidArgument, kInvalidParameterValue,
                       "Message system attribute AWSTraceHeader must have DataType String.");
    }
    *trace = std::string_view(value.string_value);
  }
  return absl::OkStatus();
}

// The names a receive asks for, checked (InvalidAttributeName).
constexpr std::string_view kSystemNames[] = {"SenderId",
                                             "SentTimestamp",
                                             "ApproximateReceiveCount",
                                             "ApproximateFirstReceiveTimestamp",
                                             "SequenceNumber",
                                             "MessageDeduplicationId",
                                             "MessageGroupId",
                                             "AWSTraceHeader",
                                             kDeadLetterSource};

bool Contains(const std::vector<std::string>& names, std::string_view n) {
  return std::find(names.begin(), names.end(), n) != names.end();
}

// Whether the message attribute `name` is selected by `patterns` ("All", "*", ".*",
// "<prefix>.*" for every name that starts with the prefix, or exact names), as the service
// reads them ("Hel.*" selects "Hello" and "Help.Me").
bool AttributeSelected(const std::vector<std::string>& patterns, const std::string& name) {
  for (const std::string& p : patterns) {
    if (p == "All" || p == "*" || p == ".*" || p == name) return true;
    if (p.size() > 2 && p.compare(p.size() - 2, 2, ".*") == 0 &&
        name.compare(0, p.size() - 2, p, 0, p.size() - 2) == 0) {
      return true;
    }
  }
  return false;
}

// How the service words a range: "Must be between 1 and 10, if provided." for most
// parameters, "Must be >= 0 and <= 20, if provided." for WaitTimeSeconds.
enum class RangeWords { kBetween, kBounds };

// The service's words for a number out of its range ("Value 11 for parameter
// MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided.").
absl::Status CheckParameter(std::string_view parameter, const std::optional<int>& value, int lo,
                            int hi, RangeWords words = RangeWords::kBetween) {
  if (!value || (*value >= lo && *value <= hi)) return absl::OkStatus();
  return detail::InvalidParameterValueFor(
      parameter, std::to_string(*value),
      words == RangeWords::kBounds
          ? fmt::format("Must be >= {} and <= {}, if provided.", lo, hi)
          : fmt::format("Must be between {} and {}, if provided.", lo, hi));
}

// A FIFO queue has no per-message delay: any DelaySeconds but 0 is refused.
absl::Status CheckNoDelay(const std::optional<int>& delay) {
  if (!delay || *delay == 0) return absl::OkStatus();
  return detail::InvalidParameterValueFor(
      "DelaySeconds", std::to_string(*delay),
      "The request include parameter that is not valid for this queue type.");
}

}  // namespace

absl::StatusOr<SendMessageOutput> Sqs::SendMessage(const SendMessageInput& input) {
  const std::string_view groups[] = {input.message_group_id};
  absl::StatusOr<std::shared_ptr<SqsQueueEntry>> entry =
      Admit("SendMessage", input.queue_url, groups);
  if (!entry.ok()) return entry.status();
  if (absl::Status s = CheckNoDelay(input.delay_seconds); !s.ok()) return s;
  std::optional<std::string_view> trace;
  if (absl::Status s = TraceHeaderOf(input.message_system_attributes, &trace); !s.ok()) return s;
  const SendMessageRequest request{.message_group_id = input.message_group_id,
                                   .message_body = input.message_body,
                                   .message_deduplication_id = input.message_deduplication_id,
                                   .message_attributes = input.message_attributes,
                                   .delay_seconds = input.delay_seconds,
                                   .aws_trace_header = trace};
  SendMessageResult sent;
  if (absl::Status s = (*entry)->queue->SendMessage(request, sent); !s.ok()) return s;
  SendMessageOutput out;
  out.md5_of_message_body = Md5OfMessageBody(input.message_body);
  out.md5_of_message_attributes = Md5OfMessageAttributes(input.message_attributes);
  out.md5_of_message_system_attributes = Md5OfMessageAttributes(input.message_system_attributes);
  out.message_id = std::move(sent.message_id);
  out.sequence_number = std::move(sent.sequence_number);
  return out;
}

absl::StatusOr<SendMessageBatchOutput> Sqs::SendMessageBatch(const SendMessageBatchInput& input) {
  const auto& entries = input.entries;
  std::array<std::string_view, detail::kMaxBatchEntries> groups;
  const size_t n = std::min<size_t>(entries.size(), detail::kMaxBatchEntries);
  for (size_t i = 0; i < n; ++i) groups[i] = entries[i].message_group_id;
  absl::StatusOr<std::shared_ptr<SqsQueueEntry>> entry =
      Admit("SendMessageBatch", input.queue_url, std::span(groups.data(), n));
  if (!entry.ok()) return entry.status();
  if (absl::Status s = detail::ValidateBatch(entries, "SendMessageBatchRequestEntry"); !s.ok()) {
    return s;
  }
  // The request's size counts every entry, also those that fail on their own below.
  if (absl::Status s =
          detail::CheckBatchBytes(entries, (*entry)->queue->attributes().maximum_message_size);
      !s.ok()) {
    return s;
  }
  // As the service: an entry without a MessageGroupId, or without a deduplication id on a
  // queue without content-based deduplication, fails the whole request, not the entry (in
  // a batch the missing group id is InvalidParameterValue, not MissingParameter).
  bool dedup_missing = false;
  for (const SendMessageBatchInputEntry& e : entries) {
    if (e.message_group_id.empty()) {
      return detail::InvalidParameterValue(
          "The request must contain the parameter MessageGroupId.");
    }
    dedup_missing = dedup_missing || !e.message_deduplication_id;
  }
  if (dedup_missing && !(*entry)->queue->attributes().content_based_deduplication) {
    return detail::MissingDeduplicationId();
  }
  // Entries with a bad system attribute fail on their own; the others go to the queue.
  std::vector<SendMessageBatchRequestEntry> to_send;
  std::vector<absl::Status> status(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    const SendMessageBatchInputEntry& e = entries[i];
    std::optional<std::string_view> trace;
    status[i] = CheckNoDelay(e.delay_seconds);
    if (status[i].ok()) status[i] = TraceHeaderOf(e.message_system_attributes, &trace);
    if (!status[i].ok()) continue;
    to_send.push_back({.id = e.id,
                       .message_group_id = e.message_group_id,
                       .message_body = e.message_body,
                       .message_deduplication_id = e.message_deduplication_id,
                       .message_attributes = e.message_attributes,
                       .delay_seconds = e.delay_seconds,
                       .aws_trace_header = trace});
  }
  SendMessageBatchResult sent;
  if (!to_send.empty()) {
    absl::StatusOr<SendMessageBatchResult> r = (*entry)->queue->SendMessageBatch(to_send);
    if (!r.ok()) return r.status();
    sent = *std::move(r);
  }
  SendMessageBatchOutput out;
  for (size_t i = 0; i < entries.size(); ++i) {
    const SendMessageBatchInputEntry& e = entries[i];
    if (!status[i].ok()) {
      out.failed.push_back(
          {std::string(e.id), std::string(ErrorName(status[i])), ErrorMessage(status[i]), true});
      continue;
    }
    auto ok = std::find_if(sent.successful.begin(), sent.successful.end(),
                           [&](const SendMessageBatchResultEntry& r) { return r.id == e.id; });
    if (ok != sent.successful.end()) {
      out.successful.push_back(
          {.id = ok->id,
           .message_id = ok->message_id,
           .md5_of_message_body = Md5OfMessageBody(e.message_body),
           .md5_of_message_attributes = Md5OfMessageAttributes(e.message_attributes),
           .md5_of_message_system_attributes = Md5OfMessageAttributes(e.message_system_attributes),
           .sequence_number = ok->sequence_number});
      continue;
    }
    auto bad = std::find_if(sent.failed.begin(), sent.failed.end(),
                            [&](const BatchResultErrorEntry& r) { return r.id == e.id; });
    if (bad != sent.failed.end()) out.failed.push_back(*bad);
  }
  return out;
}

absl::StatusOr<ReceiveMessageOutput> Sqs::ReceiveMessage(const ReceiveMessageInput& input) {
  absl::StatusOr<std::shared_ptr<SqsQueueEntry>> entry = Admit("ReceiveMessage", input.queue_url);
  if (!entry.ok()) return entry.status();
  if (absl::Status s = CheckParameter("MaxNumberOfMessages", input.max_number_of_messages, 1,
                                      detail::kMaxBatchEntries);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckParameter("WaitTimeSeconds", input.wait_time_seconds, 0, 20, RangeWords::kBounds);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckParameter("VisibilityTimeout", input.visibility_timeout, 0,
                                      detail::kMaxVisibilitySeconds);
      !s.ok()) {
    return s;
  }
  auto is_system_name = [](std::string_view n) {
    return n == "All" ||
           std::find(std::begin(kSystemNames), std::end(kSystemNames), n) != std::end(kSystemNames);
  };
  for (const std::string& n : input.message_system_attribute_names) {
    if (!is_system_name(n)) return detail::InvalidAttributeName(n);
  }
  // The deprecated AttributeNames is a list of queue attribute names: the service returns
  // the message system attributes it names and ignores the queue's (ApproximateNumberOf...).
  for (const std::string& n : input.attribute_names) {
    if (!is_system_name(n) && !detail::IsQueueAttributeName(n)) {
      return detail::InvalidAttributeName(n);
    }
  }
  auto system_wanted = [&](std::string_view n) {
    return Contains(input.message_system_attribute_names, "All") ||
           Contains(input.attribute_names, "All") ||
           Contains(input.message_system_attribute_names, n) || Contains(input.attribute_names, n);
  };
  const ReceiveMessageRequest request{
      .max_number_of_messages = input.max_number_of_messages,
      .visibility_timeout = input.visibility_timeout,
      .wait_time_seconds = input.wait_time_seconds,
      .receive_request_attempt_id = input.receive_request_attempt_id};
  std::vector<Message> received;
  if (absl::Status s = (*entry)->queue->ReceiveMessage(request, received); !s.ok()) return s;
  ReceiveMessageOutput out;
  out.messages.reserve(received.size());
  for (Message& m : received) {
    SqsMessage& r = out.messages.emplace_back();
    r.message_id = std::move(m.message_id);
    r.receipt_handle = std::move(m.receipt_handle);
    r.md5_of_body = Md5OfMessageBody(m.body);
    r.body = std::move(m.body);
    const std::pair<std::string_view, std::string> system[] = {
        {"SenderId", core_.account_id()},
        {"SentTimestamp", std::to_string(m.sent_timestamp)},
        {"ApproximateReceiveCount", std::to_string(m.approximate_receive_count)},
        {"ApproximateFirstReceiveTimestamp", std::to_string(m.approximate_first_receive_timestamp)},
        {"SequenceNumber", m.sequence_number},
        {"MessageDeduplicationId", m.message_deduplication_id},
        {"MessageGroupId", m.message_group_id},
        {"AWSTraceHeader", m.aws_trace_header},
        {kDeadLetterSource, m.dead_letter_source_queue.empty()
                                ? std::string()
                                : QueueArn(m.dead_letter_source_queue)}};
    for (const auto& [name, value] : system) {
      // The trace header and the dead-letter source only when the message has them.
      const bool optional = name == kTraceHeader || name == kDeadLetterSource;
      if (system_wanted(name) && !(optional && value.empty())) r.attributes.emplace(name, value);
    }
    for (auto& [name, value] : m.message_attributes) {
      if (AttributeSelected(input.message_attribute_names, name)) {
        r.message_attributes.emplace(name, std::move(value));
      }
    }
    r.md5_of_message_attributes = Md5OfMessageAttributes(r.message_attributes);
  }
  return out;
}

absl::Status Sqs::DeleteMessage(const DeleteMessageInput& input) {
  absl::StatusOr<std::shared_ptr<SqsQueueEntry>> entry = Admit("DeleteMessage", input.queue_url);
  if (!entry.ok()) return entry.status();
  if (input.receipt_handle.empty()) return detail::SqsMissingParameter("ReceiptHandle");
  return (*entry)->queue->DeleteMessage(input.receipt_handle);
}

absl::StatusOr<BatchResult> Sqs::DeleteMessageBatch(const DeleteMessageBatchInput& input) {
  absl::StatusOr<std::shared_ptr<SqsQueueEntry>> entry =
      Admit("DeleteMessageBatch", input.queue_url);
  if (!entry.ok()) return entry.status();
  return (*entry)->queue->DeleteMessageBatch(input.entries);
}

absl::Status Sqs::ChangeMessageVisibility(const ChangeMessageVisibilityInput& input) {
  absl::StatusOr<std::shared_ptr<SqsQueueEntry>> entry =
      Admit("ChangeMessageVisibility", input.queue_url);
  if (!entry.ok()) return entry.status();
  if (input.receipt_handle.empty()) return detail::SqsMissingParameter("ReceiptHandle");
  if (absl::Status s = CheckParameter("VisibilityTimeout", input.visibility_timeout, 0,
                                      detail::kMaxVisibilitySeconds);
      !s.ok()) {
    return s;
  }
  return (*entry)->queue->ChangeMessageVisibility(input.receipt_handle, input.visibility_timeout);
}

absl::StatusOr<BatchResult> Sqs::ChangeMessageVisibilityBatch(
    const ChangeMessageVisibilityBatchInput& input) {
  absl::StatusOr<std::shared_ptr<SqsQueueEntry>> entry =
      Admit("ChangeMessageVisibilityBatch", input.queue_url);
  if (!entry.ok()) return entry.status();
  return (*entry)->queue->ChangeMessageVisibilityBatch(input.entries);
}

}  // namespace riffle
