// A reference model of riffle::FifoQueue for tests/test_model.cpp: messages in a map by
// serial (sequence number), each delayed, queued or in flight, on one clock.
//
// SQS leaves one thing free: which ready group a receive takes from first. The model does
// not guess it: Receive() checks that what the queue returned is an allowed answer (groups
// one after the other, each from its first visible message in order, none left with a
// receivable message when fewer than asked were returned) and then adopts that answer.
// Everything else is predicted: errors, duplicates, visibility, retention, attempt ids,
// receipt handles, counters and the dead-letter queue.
#ifndef RIFFLE_TESTS_MODEL_FIFO_MODEL_H_
#define RIFFLE_TESTS_MODEL_FIFO_MODEL_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "fifo/fifo_text.h"
#include "fmt/format.h"
#include "riffle/fifo_queue.h"

namespace riffle_test::model {

struct FifoConfig {
  int visibility_s = 30;
  int retention_s = 345'600;
  int delay_s = 0;
  bool content_based = false;
  bool group_scope = false;
  int max_receive_count = 0;  // 0: no dead-letter queue
  int max_message_size = 1024;
};

class FifoModel {
 public:
  static constexpr int64_t kSecond = 1'000'000'000;

  // A dead-letter queue's sequence numbers follow the order in which poison messages of
  // different groups were moved, which is the source queue's choice: the model then checks
  // only that they increase within each group (`exact_sequence` false).
  explicit FifoModel(const FifoConfig& config, bool exact_sequence = true)
      : c_(config), exact_sequence_(exact_sequence) {}

  struct Message {
    uint64_t serial = 0;
    std::string group, body, dedup_id, message_id;
    enum class State { kDelayed, kQueued, kInFlight } state = State::kQueued;
    int64_t enqueued_ns = 0, deadline_ns = 0, received_ns = 0;
    int64_t sent_ms = 0, first_receive_ms = 0;
    int receive_count = 0;
    std::string handle;    // the current receipt handle ("" before the first receive)
    std::string sequence;  // the queue's sequence number, once seen (dead-letter queues)
    bool visibility_changed = false;
  };

  // Applies every time rule due at `now` (every call of the queue does this first).
  void Advance(int64_t now) {
    now_ = std::max(now_, now);
    for (auto& [serial, m] : messages_) {
      if (m.state == Message::State::kDelayed && m.deadline_ns <= now_)
        m.state = Message::State::kQueued;
    }
    for (auto& [serial, m] : messages_) {
      if (m.state == Message::State::kInFlight && m.deadline_ns <= now_)
        m.state = Message::State::kQueued;
    }
    std::erase_if(messages_, [&](const auto& e) {
      return e.second.enqueued_ns + int64_t{c_.retention_s} * kSecond <= now_;
    });
  }

  // ---- Sends ----

  struct SendOutcome {
    std::string_view error;  // "" when accepted
    uint64_t serial = 0;
    bool duplicate = false;
  };
  // What SendMessage answers; an accepted new message is stored once Sent() names its id.
  SendOutcome Send(std::string_view group, std::string_view body,
                   std::optional<std::string_view> dedup, int64_t clock_ns) {
    if (absl::Status s = riffle::detail::ValidateFifoId("MessageGroupId", group); !s.ok()) {
      return {riffle::ErrorName(s)};
    }
    if (dedup) {
      if (absl::Status s = riffle::detail::ValidateFifoId("MessageDeduplicationId", *dedup);
          !s.ok()) {
        return {riffle::ErrorName(s)};
      }
    } else if (!c_.content_based) {
      return {riffle::kInvalidParameterValue};
    }
    if (body.empty()) return {riffle::kMissingParameter};
    if (body.size() > static_cast<size_t>(c_.max_message_size))
      return {riffle::kInvalidParameterValue};
    for (char ch : body) {
      const auto u = static_cast<unsigned char>(ch);
      if (u < 0x20 && u != '\t' && u != '\n' && u != '\r') return {riffle::kInvalidMessageContents};
    }
    const int64_t now = send_now_ = std::max(send_now_, clock_ns);
    std::erase_if(dedup_, [&](const auto& e) { return e.second.second <= now; });
    std::string dedup_id;
    if (dedup) {
      dedup_id = std::string(*dedup);
    } else {
      char hex[64];
      riffle::detail::Sha256Hex(body, hex);
      dedup_id.assign(hex, 64);
    }
    const std::string key = c_.group_scope ? fmt::format("{}\n{}", group, dedup_id) : dedup_id;
    if (auto it = dedup_.find(key); it != dedup_.end()) return {{}, it->second.first, true};
    const uint64_t serial = next_serial_++;
    dedup_[key] = {serial, now + 300 * kSecond};
    Message m;
    m.serial = serial;
    m.group = std::string(group);
    m.body = std::string(body);
    m.dedup_id = dedup_id;
    m.enqueued_ns = now;
    m.sent_ms = now / 1'000'000;
    if (c_.delay_s > 0) {
      m.state = Message::State::kDelayed;
      m.deadline_ns = now + int64_t{c_.delay_s} * kSecond;
    }
    pending_ = m;
    return {{}, serial, false};
  }
  void Sent(const std::string& message_id) {
    pending_.message_id = message_id;
    ids_[pending_.serial] = message_id;
    messages_[pending_.serial] = pending_;
  }
  // The message id first given to `serial` (duplicates answer with it).
  const std::string& IdOf(uint64_t serial) const { return ids_.at(serial); }

  // A message moved here from the queue whose dead-letter queue this is.
  void AcceptMoved(const Message& from, int64_t clock_ns) {
    const int64_t now = send_now_ = std::max(send_now_, clock_ns);
    Message m = from;
    m.serial = next_serial_++;
    m.state = Message::State::kQueued;
    m.enqueued_ns = now;  // retention starts again; the receive count and first receive
                          // time carry over, as SQS keeps them
    m.handle.clear();
    m.visibility_changed = false;
    messages_[m.serial] = m;
  }

  // ---- Receives ----

  // Whether a receive of `max` could move poison messages the model cannot name: a ready
  // group whose takeable messages are all poison, and enough receivable messages elsewhere to fill
  // the receive before that group is reached (which group comes first is the queue's).
  bool ReceiveIsAmbiguous(int max) const {
    int receivable = 0;
    bool all_poison_group = false;
    for (const std::string& g : ReadyGroups()) {
      int here = 0;
      for (uint64_t serial : TakeableOf(g)) {
        if (!Poison(messages_.at(serial))) ++here;
      }
      receivable += here;
      all_poison_group = all_poison_group || here == 0;
    }
    return all_poison_group && receivable >= max;
  }

  // Checks a fresh receive's answer and adopts it: "" when it is an allowed answer,
  // otherwise what is wrong. Poison messages examined go to `dead_letter`.
  std::string Receive(const std::vector<riffle::Message>& got, int max, int visibility_s,
                      int64_t now, FifoModel* dead_letter) {
    const std::set<std::string> ready = ReadyGroups();
    std::vector<std::pair<std::string, std::vector<const riffle::Message*>>> runs;
    for (const riffle::Message& m : got) {
      if (runs.empty() || runs.back().first != m.message_group_id) {
        for (const auto& r : runs) {
          if (r.first == m.message_group_id) return fmt::format("group {} in two runs", r.first);
        }
        runs.push_back({m.message_group_id, {}});
      }
      runs.back().second.push_back(&m);
    }
    if (got.size() > static_cast<size_t>(max)) return "more messages than asked";
    const bool full = got.size() == static_cast<size_t>(max);
    for (size_t r = 0; r < runs.size(); ++r) {
      const auto& [group, returned] = runs[r];
      if (!ready.contains(group)) return fmt::format("group {} was not ready", group);
      const bool must_exhaust = r + 1 < runs.size() || !full;
      size_t matched = 0;
      for (uint64_t serial : TakeableOf(group)) {
        Message& m = messages_.at(serial);
        if (Poison(m)) {
          if (matched < returned.size() || must_exhaust) MoveToDeadLetter(serial, dead_letter, now);
          continue;
        }
        if (matched == returned.size()) {
          if (must_exhaust) return fmt::format("group {} still had message {}", group, m.body);
          break;
        }
        const riffle::Message& g = *returned[matched++];
        if (std::string err = CheckMessage(g, m, /*receive_count=*/m.receive_count + 1);
            !err.empty()) {
          return err;
        }
        if (g.receipt_handle == m.handle) return "a receive did not change the receipt handle";
        if (std::string err = AdoptSequence(m, g.sequence_number); !err.empty()) return err;
        m.state = Message::State::kInFlight;
        m.deadline_ns = now + int64_t{visibility_s} * kSecond;
        m.received_ns = now;
        ++m.receive_count;
        if (m.first_receive_ms == 0) m.first_receive_ms = now / 1'000'000;
        m.handle = g.receipt_handle;
        issued_.insert(g.receipt_handle);
        m.visibility_changed = false;
      }
      if (matched != returned.size()) {
        return fmt::format("group {}: the messages returned are not its first visible ones", group);
      }
    }
    if (!full) {
      for (const std::string& group : ready) {
        bool in_runs = false;
        for (const auto& r : runs) in_runs = in_runs || r.first == group;
        if (in_runs) continue;
        for (uint64_t serial : TakeableOf(group)) {
          if (!Poison(messages_.at(serial))) {
            return fmt::format("ready group {} was left out of a receive that was not full", group);
          }
          MoveToDeadLetter(serial, dead_letter, now);
        }
      }
    }
    return "";
  }

  // A ReceiveRequestAttemptId: the messages a retry must return again, or nullopt when the
  // receive is fresh (no attempt, expired, or one of its messages changed since).
  std::optional<std::vector<std::pair<uint64_t, std::string>>> Replay(const std::string& attempt) {
    auto it = attempts_.find(attempt);
    if (it == attempts_.end()) return std::nullopt;
    if (it->second.expires_ns <= now_) {
      attempts_.erase(it);
      return std::nullopt;
    }
    for (const auto& [serial, handle] : it->second.handles) {
      auto m = messages_.find(serial);
      if (m == messages_.end() || m->second.state != Message::State::kInFlight ||
          m->second.handle != handle || m->second.visibility_changed) {
        attempts_.erase(it);
        return std::nullopt;
      }
    }
    return it->second.handles;
  }
  // Checks a replayed answer and applies it.
  std::string Replayed(const std::vector<riffle::Message>& got,
                       const std::vector<std::pair<uint64_t, std::string>>& expected,
                       int visibility_s, int64_t now) {
    if (got.size() != expected.size()) return "a retried receive returned other messages";
    for (size_t i = 0; i < got.size(); ++i) {
      Message& m = messages_.at(expected[i].first);
      if (got[i].receipt_handle != expected[i].second) return "a retry changed a receipt handle";
      if (std::string err = CheckMessage(got[i], m, m.receive_count); !err.empty()) return err;
      m.deadline_ns = now + int64_t{visibility_s} * kSecond;
      if (m.deadline_ns <= now) m.state = Message::State::kQueued;
    }
    return "";
  }
  // After a fresh receive with an attempt id that returned messages: a retry within five
  // minutes returns the same ones.
  void RecordAttempt(const std::string& attempt, const std::vector<riffle::Message>& got,
                     int64_t now) {
    Attempt& a = attempts_[attempt];
    a.expires_ns = now + 300 * kSecond;
    a.handles.clear();
    for (const riffle::Message& g : got)
      a.handles.emplace_back(ByHandle(g.receipt_handle)->serial, g.receipt_handle);
  }

  // ---- Handles ----

  // Only the current handle of a message in flight deletes it; any other handle this
  // queue made has expired (InvalidParameterValue); others are not handles of this queue.
  std::string_view Delete(const std::string& handle) {
    Message* m = ByHandle(handle);
    if (m == nullptr || m->state != Message::State::kInFlight) {
      return issued_.contains(handle) ? riffle::kInvalidParameterValue
                                      : riffle::kReceiptHandleIsInvalid;
    }
    messages_.erase(m->serial);
    return "";
  }

  // An earlier receive's handle, or one of a message that is gone: InvalidParameterValue.
  std::string_view ChangeVisibility(const std::string& handle, int timeout, int64_t now) {
    Message* m = ByHandle(handle);
    if (m == nullptr) {
      return issued_.contains(handle) ? riffle::kInvalidParameterValue
                                      : riffle::kReceiptHandleIsInvalid;
    }
    if (timeout < 0 || timeout > 43'200) return riffle::kInvalidParameterValue;
    if (m->state != Message::State::kInFlight) return riffle::kMessageNotInflight;
    const int64_t deadline = now + int64_t{timeout} * kSecond;
    if (deadline - m->received_ns > 43'200 * kSecond) return riffle::kInvalidParameterValue;
    m->deadline_ns = deadline;
    if (deadline <= now) m->state = Message::State::kQueued;
    m->visibility_changed = true;
    return "";
  }

  void Purge() {
    messages_.clear();
    attempts_.clear();
    dedup_.clear();
  }

  riffle::QueueAttributes Attributes() const {
    riffle::QueueAttributes a;
    for (const auto& [serial, m] : messages_) {
      switch (m.state) {
        case Message::State::kQueued:
          ++a.approximate_number_of_messages;
          break;
        case Message::State::kInFlight:
          ++a.approximate_number_of_messages_not_visible;
          break;
        case Message::State::kDelayed:
          ++a.approximate_number_of_messages_delayed;
          break;
      }
    }
    return a;
  }

  const std::map<uint64_t, Message>& messages() const { return messages_; }

 private:
  struct Attempt {
    int64_t expires_ns = 0;
    std::vector<std::pair<uint64_t, std::string>> handles;  // (serial, handle), in order
  };

  bool Poison(const Message& m) const {
    return c_.max_receive_count > 0 && m.receive_count >= c_.max_receive_count;
  }

  // Groups with a visible message that no message of the group in flight precedes (SQS:
  // a message visible again is receivable before later ones of its group are done).
  std::set<std::string> ReadyGroups() const {
    std::set<std::string> visible, ready;
    for (const auto& [serial, m] : messages_) {
      if (m.state == Message::State::kQueued) visible.insert(m.group);
    }
    for (const std::string& g : visible) {
      if (!TakeableOf(g).empty()) ready.insert(g);
    }
    return ready;
  }

  // A group's visible messages that a receive may take, in order: those before the
  // group's first message in flight.
  std::vector<uint64_t> TakeableOf(const std::string& group) const {
    std::vector<uint64_t> out;
    for (const auto& [serial, m] : messages_) {  // in sequence order
      if (m.group != group) continue;
      if (m.state == Message::State::kInFlight) break;
      if (m.state == Message::State::kQueued) out.push_back(serial);
    }
    return out;
  }

  void MoveToDeadLetter(uint64_t serial, FifoModel* dead_letter, int64_t now) {
    dead_letter->AcceptMoved(messages_.at(serial), now);
    messages_.erase(serial);
  }

  Message* ByHandle(const std::string& handle) {
    if (handle.empty()) return nullptr;
    for (auto& [serial, m] : messages_) {
      if (m.handle == handle) return &m;
    }
    return nullptr;
  }

  // A dead-letter queue's sequence number: the same at every receive, and in the group's
  // order.
  std::string AdoptSequence(Message& m, const std::string& sequence) {
    if (exact_sequence_) return "";
    if (!m.sequence.empty()) return m.sequence == sequence ? "" : "a sequence number changed";
    for (const auto& [serial, other] : messages_) {
      if (other.group == m.group && !other.sequence.empty() &&
          (serial < m.serial) != (other.sequence < sequence)) {
        return fmt::format("sequence number {} is out of its group's order", sequence);
      }
    }
    m.sequence = sequence;
    return "";
  }

  std::string CheckMessage(const riffle::Message& got, const Message& m, int receive_count) const {
    std::string sequence;
    riffle::detail::FormatSequenceNumber(m.serial, &sequence);
    if (!exact_sequence_) sequence = got.sequence_number;  // checked by AdoptSequence
    if (got.message_id != m.message_id || got.body != m.body || got.message_group_id != m.group ||
        got.message_deduplication_id != m.dedup_id || got.sequence_number != sequence ||
        got.approximate_receive_count != receive_count || got.sent_timestamp != m.sent_ms ||
        !got.message_attributes.empty()) {
      return fmt::format(
          "received {} (body {}, group {}, sequence {}, count {}, sent {}); the model has {} "
          "(body {}, group {}, sequence {}, count {}, sent {})",
          got.message_id, got.body, got.message_group_id, got.sequence_number,
          got.approximate_receive_count, got.sent_timestamp, m.message_id, m.body, m.group,
          sequence, receive_count, m.sent_ms);
    }
    const int64_t first = m.first_receive_ms != 0 ? m.first_receive_ms : now_ / 1'000'000;
    if (got.approximate_first_receive_timestamp != first) return "ApproximateFirstReceiveTimestamp";
    return "";
  }

  FifoConfig c_;
  bool exact_sequence_;
  int64_t now_ = 0;
  int64_t send_now_ = 0;
  uint64_t next_serial_ = 1;
  std::map<uint64_t, Message> messages_;
  std::map<uint64_t, std::string> ids_;                        // serial -> message id
  std::map<std::string, std::pair<uint64_t, int64_t>> dedup_;  // key -> (serial, expiry)
  std::map<std::string, Attempt> attempts_;
  std::set<std::string> issued_;  // every receipt handle this queue returned
  Message pending_;
};

}  // namespace riffle_test::model

#endif  // RIFFLE_TESTS_MODEL_FIFO_MODEL_H_
