// FifoQueue through its public calls: names, group and deduplication ids, bodies,
// attributes, attempt ids and receipt handles from the input, in any order, on a
// ManualClock. Every call returns a status with an SQS error name; a received message is
// one that was sent, unchanged (body, group, deduplication id, attributes, sequence
// number), messages of a group come in order, a duplicate send answers with the original
// message, and a receipt handle no receive returned is ReceiptHandleIsInvalid.
//
// Input: lines of '|'-separated fields, the first naming the call:
//   Q|name|content-based(0/1)|group-scope(0/1)|delay|visibility|maxReceiveCount(0: no DLQ)
//                                             (first line only: the queue; else defaults)
//   S|group|body|dedup[|attribute name|type|value]   SendMessage (no dedup field: none)
//   B|id|group|body|dedup[|id|group|body|dedup...]    SendMessageBatch
//   R|max|visibility|attempt id                       ReceiveMessage (wait 0)
//   L|max                                             ReceiveMessage on the dead-letter queue
//   D|handle  V|handle|timeout                        DeleteMessage, ChangeMessageVisibility
//   d|handle|handle...  v|handle|timeout|handle|timeout...   the batch forms
//   T|seconds  A  P                                   advance the clock, attributes, purge
// A handle "#k" is the k-th handle received, "~k" the same with its last digit changed,
// anything else is used as written.
#include <charconv>
#include <set>

#include "fuzz_support.h"
#include "riffle/fifo_queue.h"

namespace {

using riffle_fuzz::Printable;
using riffle_fuzz::Split;

int Int(std::string_view s, int fallback = 0) {
  int v = fallback;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

bool IsSqsName(const absl::Status& s) {
  const std::string_view n = riffle::ErrorName(s);
  return n == riffle::kInvalidParameterValue || n == riffle::kMissingParameter ||
         n == riffle::kReceiptHandleIsInvalid || n == riffle::kMessageNotInflight ||
         n == riffle::kInvalidMessageContents || n == riffle::kTooManyEntriesInBatchRequest ||
         n == riffle::kBatchEntryIdsNotDistinct || n == riffle::kEmptyBatchRequest ||
         n == riffle::kInvalidBatchEntryId || n == riffle::kBatchRequestTooLong ||
         n == riffle::kInvalidAttributeValue;
}

struct Sent {
  std::string group, body, dedup, sequence_number;
  riffle::MessageAttributes attributes;
};

class Harness {
 public:
  explicit Harness(riffle::FifoQueue* queue, riffle::FifoQueue* dlq, riffle::ManualClock* clock)
      : queue_(queue), dlq_(dlq), clock_(clock) {}

  void Run(std::string_view line) {
    const std::vector<std::string_view> f = Split(line, '|');
    if (f[0].size() != 1) return;
    switch (f[0][0]) {
      case 'S':
        Send(f);
        break;
      case 'B':
        SendBatch(f);
        break;
      case 'R':
        Receive(*queue_, f, true);
        break;
      case 'L':
        Receive(*dlq_, f, false);
        break;
      case 'D':
        Delete(f);
        break;
      case 'V':
        ChangeVisibility(f);
        break;
      case 'd':
        DeleteBatch(f);
        break;
      case 'v':
        ChangeVisibilityBatch(f);
        break;
      case 'T':
        clock_->Advance(absl::Seconds(std::clamp(Int(f.size() > 1 ? f[1] : "1"), 0, 100000)));
        break;
      case 'A':
        Attributes();
        break;
      case 'P':
        queue_->PurgeQueue();
        break;
      default:
        break;
    }
  }

 private:
  void CheckStatus(const absl::Status& s, std::string_view call) {
    FUZZ_CHECK(s.ok() || IsSqsName(s), fmt::format("{}: {}", call, riffle_fuzz::Describe(s)));
  }

  void Accepted(const riffle::SendMessageResult& r, std::string_view group, std::string_view body,
                std::optional<std::string_view> dedup,
                const riffle::MessageAttributes& attributes) {
    auto [it, inserted] = sent_.try_emplace(r.message_id);
    if (inserted) {
      it->second = {std::string(group), std::string(body), dedup ? std::string(*dedup) : "",
                    r.sequence_number, attributes};
    } else {
      // A duplicate answers like the original.
      FUZZ_CHECK(it->second.sequence_number == r.sequence_number, "duplicate's sequence number");
    }
  }

  void Send(const std::vector<std::string_view>& f) {
    riffle::SendMessageRequest request;
    request.message_group_id = f.size() > 1 ? f[1] : "";
    request.message_body = f.size() > 2 ? f[2] : "";
    if (f.size() > 3) request.message_deduplication_id = f[3];
    if (f.size() > 6) {
      riffle::MessageAttributeValue v;
      v.data_type = std::string(f[5]);
      (v.data_type.starts_with("Binary") ? v.binary_value : v.string_value) = std::string(f[6]);
      request.message_attributes[std::string(f[4])] = v;
    }
    const absl::StatusOr<riffle::SendMessageResult> r = queue_->SendMessage(request);
    CheckStatus(r.status(), "SendMessage");
    if (r.ok()) {
      Accepted(*r, request.message_group_id, request.message_body, request.message_deduplication_id,
               request.message_attributes);
    }
  }

  void SendBatch(const std::vector<std::string_view>& f) {
    std::vector<riffle::SendMessageBatchRequestEntry> entries;
    for (size_t i = 1; i + 3 < f.size() + 1 && entries.size() < 12; i += 4) {
      riffle::SendMessageBatchRequestEntry e;
      e.id = f[i];
      e.message_group_id = i + 1 < f.size() ? f[i + 1] : "";
      e.message_body = i + 2 < f.size() ? f[i + 2] : "";
      if (i + 3 < f.size()) e.message_deduplication_id = f[i + 3];
      entries.push_back(e);
    }
    const absl::StatusOr<riffle::SendMessageBatchResult> r = queue_->SendMessageBatch(entries);
    CheckStatus(r.status(), "SendMessageBatch");
    if (!r.ok()) return;
    FUZZ_CHECK(r->successful.size() + r->failed.size() == entries.size(), "batch result size");
    for (const auto& ok : r->successful) {
      for (const auto& e : entries) {
        if (e.id == ok.id) {
          Accepted({ok.message_id, ok.sequence_number}, e.message_group_id, e.message_body,
                   e.message_deduplication_id, {});
          break;
        }
      }
    }
    for (const auto& failed : r->failed) {
      FUZZ_CHECK(IsSqsName(riffle::MakeError(absl::StatusCode::kInvalidArgument, failed.code, "")),
                 failed.code);
    }
  }

  void Receive(riffle::FifoQueue& queue, const std::vector<std::string_view>& f, bool main) {
    riffle::ReceiveMessageRequest request;
    request.max_number_of_messages = f.size() > 1 ? Int(f[1], 1) : 1;
    if (f.size() > 2) request.visibility_timeout = Int(f[2]);
    if (f.size() > 3 && main) request.receive_request_attempt_id = f[3];
    request.wait_time_seconds = 0;  // a long poll on a ManualClock would wait for the clock
    const absl::StatusOr<riffle::ReceiveMessageResult> r = queue.ReceiveMessage(request);
    CheckStatus(r.status(), "ReceiveMessage");
    if (!r.ok()) return;
    // A retry with the same ReceiveRequestAttemptId answers with the first receive's
    // messages, as SQS documents, even when it asks for fewer (docs/reliability.md).
    FUZZ_CHECK(!request.receive_request_attempt_id.empty() ||
                   r->messages.size() <= static_cast<size_t>(request.max_number_of_messages),
               "received more than asked");
    std::map<std::string, std::string> last_in_group;
    std::set<std::string> ids;
    for (const riffle::Message& m : r->messages) {
      const auto it = sent_.find(m.message_id);
      FUZZ_CHECK(it != sent_.end(),
                 fmt::format("received message {} was never sent", m.message_id));
      const Sent& s = it->second;
      FUZZ_CHECK(
          m.body == s.body && m.message_group_id == s.group && m.message_attributes == s.attributes,
          fmt::format("message {} differs from what was sent", m.message_id));
      FUZZ_CHECK(!main || m.sequence_number == s.sequence_number, "sequence number changed");
      FUZZ_CHECK(s.dedup.empty() || m.message_deduplication_id == s.dedup, "deduplication id");
      FUZZ_CHECK(ids.insert(m.message_id).second, "a message twice in one receive");
      std::string& last = last_in_group[m.message_group_id];
      FUZZ_CHECK(!main || last < m.sequence_number, "a group out of order within one receive");
      last = m.sequence_number;
      handles_.push_back(m.receipt_handle);
      if (main) issued_.insert(m.receipt_handle);
    }
  }

  std::string Handle(std::string_view ref) {
    if (!handles_.empty() && ref.size() >= 2 && (ref[0] == '#' || ref[0] == '~')) {
      std::string h = handles_[static_cast<size_t>(Int(ref.substr(1))) % handles_.size()];
      if (ref[0] == '~') h.back() = h.back() == '0' ? '1' : '0';
      return h;
    }
    return std::string(ref);
  }

  // A handle no receive of the main queue ever returned is refused.
  void CheckUnknownHandle(const std::string& handle, const absl::Status& s) {
    if (!issued_.contains(handle)) {
      FUZZ_CHECK(riffle::HasErrorName(s, riffle::kReceiptHandleIsInvalid),
                 fmt::format("handle '{}': {}", Printable(handle),
                             s.ok() ? "OK" : riffle_fuzz::Describe(s)));
    }
  }

  void Delete(const std::vector<std::string_view>& f) {
    const std::string handle = Handle(f.size() > 1 ? f[1] : "");
    const absl::Status s = queue_->DeleteMessage(handle);
    CheckStatus(s, "DeleteMessage");
    CheckUnknownHandle(handle, s);
  }

  void ChangeVisibility(const std::vector<std::string_view>& f) {
    const std::string handle = Handle(f.size() > 1 ? f[1] : "");
    const absl::Status s = queue_->ChangeMessageVisibility(handle, f.size() > 2 ? Int(f[2]) : 0);
    CheckStatus(s, "ChangeMessageVisibility");
    CheckUnknownHandle(handle, s);
  }

  void DeleteBatch(const std::vector<std::string_view>& f) {
    std::vector<std::string> handles;
    for (size_t i = 1; i < f.size() && i < 13; ++i) handles.push_back(Handle(f[i]));
    std::vector<riffle::DeleteMessageBatchRequestEntry> entries;
    std::vector<std::string> ids;
    ids.reserve(handles.size());
    for (size_t i = 0; i < handles.size(); ++i) {
      ids.push_back(fmt::format("e{}", i % 11));
      entries.push_back({ids.back(), handles[i]});
    }
    const absl::StatusOr<riffle::BatchResult> r = queue_->DeleteMessageBatch(entries);
    CheckStatus(r.status(), "DeleteMessageBatch");
    if (r.ok()) FUZZ_CHECK(r->successful.size() + r->failed.size() == entries.size(), "batch size");
  }

  void ChangeVisibilityBatch(const std::vector<std::string_view>& f) {
    std::vector<std::string> handles;
    std::vector<int> timeouts;
    for (size_t i = 1; i < f.size() && handles.size() < 12; i += 2) {
      handles.push_back(Handle(f[i]));
      timeouts.push_back(i + 1 < f.size() ? Int(f[i + 1]) : 0);
    }
    std::vector<riffle::ChangeMessageVisibilityBatchRequestEntry> entries;
    std::vector<std::string> ids;
    ids.reserve(handles.size());
    for (size_t i = 0; i < handles.size(); ++i) {
      ids.push_back(fmt::format("e{}", i));
      entries.push_back({ids.back(), handles[i], timeouts[i]});
    }
    const absl::StatusOr<riffle::BatchResult> r = queue_->ChangeMessageVisibilityBatch(entries);
    CheckStatus(r.status(), "ChangeMessageVisibilityBatch");
    if (r.ok()) FUZZ_CHECK(r->successful.size() + r->failed.size() == entries.size(), "batch size");
  }

  void Attributes() {
    const riffle::QueueAttributes a = queue_->GetQueueAttributes();
    FUZZ_CHECK(a.approximate_number_of_messages >= 0 &&
                   a.approximate_number_of_messages_not_visible >= 0 &&
                   a.approximate_number_of_messages_delayed >= 0,
               "negative counters");
    const int64_t live = a.approximate_number_of_messages +
                         a.approximate_number_of_messages_not_visible +
                         a.approximate_number_of_messages_delayed;
    FUZZ_CHECK(live <= static_cast<int64_t>(sent_.size()), "more messages than were sent");
  }

  riffle::FifoQueue* queue_;
  riffle::FifoQueue* dlq_;
  riffle::ManualClock* clock_;
  std::map<std::string, Sent> sent_;  // by message id
  std::vector<std::string> handles_;  // every handle received, both queues
  std::set<std::string> issued_;      // handles received from the main queue
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<std::string_view> lines = Split(riffle_fuzz::AsText(data, size), '\n');
  riffle::ManualClock clock;
  riffle::FifoQueueOptions dlq_options;
  dlq_options.name = "dead.fifo";
  dlq_options.clock = &clock;
  dlq_options.content_based_deduplication = true;
  auto dlq = riffle::FifoQueue::Create(dlq_options);
  FUZZ_CHECK(dlq.ok(), "dead-letter queue");

  riffle::FifoQueueOptions o;
  o.name = "fuzzed.fifo";
  o.clock = &clock;
  size_t first = 0;
  if (!lines.empty() && lines[0].starts_with("Q|")) {
    const std::vector<std::string_view> f = Split(lines[0], '|');
    first = 1;
    if (f.size() > 1) o.name = std::string(f[1]);
    if (f.size() > 2) o.content_based_deduplication = f[2] == "1";
    if (f.size() > 3 && f[3] == "1")
      o.deduplication_scope = riffle::DeduplicationScope::kMessageGroup;
    if (f.size() > 4) o.delay_seconds = Int(f[4]);
    if (f.size() > 5) o.visibility_timeout_seconds = Int(f[5], 30);
    if (f.size() > 6 && Int(f[6]) != 0) {
      o.redrive_policy = riffle::RedrivePolicy{dlq->get(), Int(f[6])};
    }
  }
  absl::StatusOr<std::unique_ptr<riffle::FifoQueue>> queue = riffle::FifoQueue::Create(o);
  if (!queue.ok()) {
    FUZZ_CHECK(riffle::HasErrorName(queue.status(), riffle::kInvalidParameterValue) ||
                   riffle::HasErrorName(queue.status(), riffle::kInvalidAttributeValue) ||
                   riffle::HasErrorName(queue.status(), riffle::kMissingParameter),
               riffle_fuzz::Describe(queue.status()));
    return 0;
  }
  Harness harness(queue->get(), dlq->get(), &clock);
  for (size_t i = first; i < lines.size() && i < first + 200; ++i) harness.Run(lines[i]);
  queue->reset();  // before its dead-letter queue
  return 0;
}
