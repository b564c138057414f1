// Model-based random test of riffle::FifoQueue against tests/model/fifo_model.h (the
// harness, the seeds and the replay as test_model.cpp describes).

#include <absl/strings/str_join.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "model/fifo_model.h"
#include "model_run.h"
#include "riffle/fifo_queue.h"
#include "support/alloc_counter.h"

namespace {

using riffle_test::model::FifoConfig;
using riffle_test::model::FifoModel;
using riffle_test::model_run::Name;
using riffle_test::model_run::Op;
using riffle_test::model_run::RunSeeds;
using riffle_test::model_run::Short;

// ============================== FifoQueue ==============================

enum class F {
  kSend,
  kReceive,
  kReceiveDeadLetter,
  kDelete,
  kDeleteDeadLetter,
  kVisibility,
  kAdvance,
  kAttributes,
  kPurge
};
using FifoOp = Op<F>;

std::string ToString(const FifoOp& op) {
  static constexpr const char* kNames[] = {"Send",    "Receive",          "ReceiveDeadLetter",
                                           "Delete",  "DeleteDeadLetter", "ChangeMessageVisibility",
                                           "Advance", "Attributes",       "Purge"};
  return fmt::format("{}({}, {}, {}, {})", kNames[static_cast<int>(op.kind)], op.a, op.b, op.c,
                     op.d);
}

std::string ToString(const FifoConfig& c) {
  return fmt::format(
      "visibility {} s, retention {} s, delay {} s, content-based {}, group scope {}, "
      "maxReceiveCount {}",
      c.visibility_s, c.retention_s, c.delay_s, c.content_based, c.group_scope,
      c.max_receive_count);
}

FifoConfig FifoConfigFor(uint64_t seed) {
  std::mt19937_64 rng(seed * 0xD1B54A32D192ED03ull);
  FifoConfig c;
  static constexpr int kVisibility[] = {30, 30, 5, 0, 60};
  c.visibility_s = kVisibility[rng() % 5];
  c.retention_s = 60 + static_cast<int>(rng() % 900);
  c.delay_s = rng() % 3 == 0 ? 1 + static_cast<int>(rng() % 10) : 0;
  c.content_based = rng() % 2;
  c.group_scope = rng() % 3 == 0;
  c.max_receive_count = rng() % 2 ? 1 + static_cast<int>(rng() % 3) : 0;
  return c;
}

std::vector<FifoOp> FifoOpsFor(uint64_t seed) {
  std::mt19937_64 rng(seed ^ 0xF1F0);
  const size_t n = 40 + rng() % 200;
  static constexpr int kWeights[] = {30, 22, 5, 10, 3, 8, 12, 4, 1};
  std::discrete_distribution<int> kind(std::begin(kWeights), std::end(kWeights));
  std::vector<FifoOp> ops;
  for (size_t i = 0; i < n; ++i)
    ops.push_back({static_cast<F>(kind(rng)), rng(), rng(), rng(), rng()});
  return ops;
}

class FifoRun {
 public:
  explicit FifoRun(const FifoConfig& config)
      : config_(config), model_(config), dead_model_(DeadLetterConfig(), /*exact_sequence=*/false) {
    riffle::FifoQueueOptions dead;
    dead.name = "dead.fifo";
    dead.clock = &clock_;
    dead.content_based_deduplication = true;
    dead_ = std::move(riffle::FifoQueue::Create(dead)).value();
    riffle::FifoQueueOptions o;
    o.name = "modelled.fifo";
    o.clock = &clock_;
    o.visibility_timeout_seconds = config.visibility_s;
    o.message_retention_period_seconds = config.retention_s;
    o.delay_seconds = config.delay_s;
    o.content_based_deduplication = config.content_based;
    o.maximum_message_size = config.max_message_size;
    if (config.group_scope) o.deduplication_scope = riffle::DeduplicationScope::kMessageGroup;
    if (config.max_receive_count > 0)
      o.redrive_policy = riffle::RedrivePolicy{dead_.get(), config.max_receive_count};
    queue_ = std::move(riffle::FifoQueue::Create(o)).value();
  }
  ~FifoRun() { queue_.reset(); }  // before its dead-letter queue

  std::string Run(const std::vector<FifoOp>& ops, size_t* executed,
                  std::vector<std::string>* transcript = nullptr) {
    for (size_t i = 0; i < ops.size(); ++i) {
      said_ = ToString(ops[i]);
      std::string error = Step(ops[i]);
      ++*executed;
      if (transcript != nullptr) transcript->push_back(said_);
      if (!error.empty()) return fmt::format("operation {} {}: {}", i, said_, error);
    }
    return "";
  }

 private:
  static FifoConfig DeadLetterConfig() {
    FifoConfig c;
    c.content_based = true;
    return c;
  }
  int64_t Now() const { return clock_.NowMillis() * 1'000'000; }

  std::string Step(const FifoOp& op) {
    switch (op.kind) {
      case F::kSend:
        return Send(op);
      case F::kReceive:
        return Receive(op);
      case F::kReceiveDeadLetter:
        return ReceiveDeadLetter(op);
      case F::kDelete:
        return Delete(op, *queue_, model_);
      case F::kDeleteDeadLetter:
        return Delete(op, *dead_, dead_model_);
      case F::kVisibility:
        return Visibility(op);
      case F::kAdvance:
        return Advance(op);
      case F::kAttributes:
        return Attributes();
      case F::kPurge:
        said_ = "PurgeQueue";
        queue_->PurgeQueue();
        model_.Purge();
        return "";
    }
    return "unknown operation";
  }

  std::string Send(const FifoOp& op) {
    std::string group = fmt::format("g{}", op.a % 4);
    if (op.a % 25 == 4) group = "";
    if (op.a % 25 == 5) group = "bad group";
    std::string body(1 + op.c % 3, 'a');  // short bodies from three letters: duplicates happen
    for (size_t i = 0; i < body.size(); ++i)
      body[i] = static_cast<char>('a' + (op.c >> (2 * i)) % 3);
    if (op.b % 30 == 1) body = "";
    if (op.b % 30 == 2) body = "x\x01y";
    if (op.b % 30 == 3) body = std::string(1025, 'z');
    std::optional<std::string> dedup;  // none, empty, invalid or one of six
    if (op.d % 40 == 7) {
      dedup.emplace();
    } else if (op.d % 40 == 8) {
      dedup.emplace("bad id");
    } else if (op.d % 9 != 6) {
      dedup.emplace(fmt::format("d{}", op.d % 6));
    }
    riffle::SendMessageRequest request{group, body, {}, {}, {}};
    if (dedup) request.message_deduplication_id = *dedup;
    const auto real = queue_->SendMessage(request);
    said_ = fmt::format("SendMessage(group '{}', body '{}', dedup {})", group, Short(body),
                        dedup ? "'" + *dedup + "'" : "none");
    const auto model = model_.Send(group, body, request.message_deduplication_id, Now());
    if (Name(real.status()) != Name(model.error)) {
      return fmt::format("SendMessage answered {} ({}), the model {}", Name(real.status()),
                         riffle::ErrorMessage(real.status()), Name(model.error));
    }
    if (!real.ok()) return "";
    std::string sequence;
    riffle::detail::FormatSequenceNumber(model.serial, &sequence);
    if (real->sequence_number != sequence) {
      return fmt::format("sequence number {}, the model {}", real->sequence_number, sequence);
    }
    if (model.duplicate) {
      if (real->message_id != model_.IdOf(model.serial)) return "a duplicate got a new message id";
      return "";
    }
    for (const auto& [serial, m] : model_.messages()) {
      if (m.message_id == real->message_id) return "a new message reused a message id";
    }
    model_.Sent(real->message_id);
    return "";
  }

  std::string Receive(const FifoOp& op) {
    riffle::ReceiveMessageRequest request;
    request.max_number_of_messages = static_cast<int>(op.a % 12);  // 0 and 11 are refused
    if (op.a % 12 == 0 && op.a % 5 != 0) request.max_number_of_messages = 10;
    static constexpr int kVisibility[] = {-1, 0, 1, 5, 30, 60, 43'201};
    const int v = kVisibility[op.b % 7];
    if (v >= 0) request.visibility_timeout = v;
    static const std::string kAttempts[] = {"", "att-0", "att-1", "bad attempt"};
    const std::string attempt = kAttempts[op.c % 4];
    request.receive_request_attempt_id = attempt;
    request.wait_time_seconds = 0;
    const int visibility = request.visibility_timeout.value_or(config_.visibility_s);
    said_ = fmt::format("ReceiveMessage(max {}, visibility {}, attempt '{}')",
                        request.max_number_of_messages, visibility, attempt);

    std::string_view expected_error;
    if (request.max_number_of_messages < 1 || request.max_number_of_messages > 10 ||
        visibility > 43'200 || attempt == "bad attempt") {
      expected_error = riffle::kInvalidParameterValue;
    }
    const int64_t now = Now();
    if (!expected_error.empty()) {
      const auto real = queue_->ReceiveMessage(request);
      return Name(real.status()) == Name(expected_error) ? ""
                                                         : "ReceiveMessage: " + Name(real.status());
    }
    model_.Advance(now);
    std::optional<std::vector<std::pair<uint64_t, std::string>>> replay;
    if (!attempt.empty()) replay = model_.Replay(attempt);
    // Which poison messages a full receive moves depends on the queue's group order.
    if (!replay && model_.ReceiveIsAmbiguous(request.max_number_of_messages)) return "";
    const auto real = queue_->ReceiveMessage(request);
    if (!real.ok()) return "ReceiveMessage: " + Name(real.status());
    for (const auto& m : real->messages) handles_.push_back(m.receipt_handle);
    if (replay) return model_.Replayed(real->messages, *replay, visibility, now);
    std::string err = model_.Receive(real->messages, request.max_number_of_messages, visibility,
                                     now, &dead_model_);
    if (!err.empty()) return err;
    if (!attempt.empty() && !real->messages.empty())
      model_.RecordAttempt(attempt, real->messages, now);
    return "";
  }

  std::string ReceiveDeadLetter(const FifoOp& op) {
    const int max = 1 + static_cast<int>(op.a % 10);
    const auto real =
        dead_->ReceiveMessage({.max_number_of_messages = max, .wait_time_seconds = 0});
    said_ = fmt::format("ReceiveMessage on the dead-letter queue(max {})", max);
    if (!real.ok()) return "ReceiveMessage (dead-letter queue): " + Name(real.status());
    for (const auto& m : real->messages) handles_.push_back(m.receipt_handle);
    dead_model_.Advance(Now());
    std::string err = dead_model_.Receive(real->messages, max, 30, Now(), nullptr);
    return err.empty() ? "" : "dead-letter queue: " + err;
  }

  // Mostly one of the last few handles received (often still current), else any.
  std::string Handle(const FifoOp& op) const {
    if (op.c % 20 == 1 || handles_.empty()) return "not-a-handle";
    if (op.c % 20 == 2) return "";
    if (op.c % 10 < 7)
      return handles_[handles_.size() - 1 - op.a % std::min<size_t>(3, handles_.size())];
    return handles_[op.a % handles_.size()];
  }

  std::string Delete(const FifoOp& op, riffle::FifoQueue& queue, FifoModel& model) {
    const std::string handle = Handle(op);
    const absl::Status real = queue.DeleteMessage(handle);
    said_ = fmt::format("DeleteMessage{}({})",
                        &queue == dead_.get() ? " on the dead-letter queue" : "", handle);
    model.Advance(Now());
    const std::string_view expected = model.Delete(handle);
    if (Name(real) != Name(expected)) {
      return fmt::format("DeleteMessage({}) answered {}, the model {}", handle, Name(real),
                         Name(expected));
    }
    return "";
  }

  std::string Visibility(const FifoOp& op) {
    static constexpr int kTimeouts[] = {0, 1, 10, 30, 100, -1, 43'201, 43'200, 3600};
    const int timeout = kTimeouts[op.b % 9];
    const std::string handle = Handle(op);
    const absl::Status real = queue_->ChangeMessageVisibility(handle, timeout);
    said_ = fmt::format("ChangeMessageVisibility({}, {})", handle, timeout);
    model_.Advance(Now());
    const std::string_view expected = model_.ChangeVisibility(handle, timeout, Now());
    if (Name(real) != Name(expected)) {
      return fmt::format("ChangeMessageVisibility({}, {}) answered {}, the model {}", handle,
                         timeout, Name(real), Name(expected));
    }
    return "";
  }

  std::string Advance(const FifoOp& op) {
    // Milliseconds and seconds mostly; a minute or more passes deduplication windows and
    // retention, hours the 12-hour visibility limit.
    const uint64_t bucket = op.a % 100;
    const int scale = bucket < 40 ? 0 : bucket < 75 ? 1 : bucket < 95 ? 2 : 3;
    static constexpr int64_t kScales[] = {1, 1000, 61'000, 3'600'000};
    const int64_t ms = kScales[scale] * static_cast<int64_t>(1 + op.b % 6);
    clock_.Advance(absl::Milliseconds(ms));
    said_ = fmt::format("clock += {} ms", ms);
    return "";
  }

  std::string Attributes() {
    said_ = "GetQueueAttributes on both queues";
    for (auto [queue, model, name] : {std::tuple{queue_.get(), &model_, "queue"},
                                      std::tuple{dead_.get(), &dead_model_, "dead-letter queue"}}) {
      const riffle::QueueAttributes real = queue->GetQueueAttributes();
      model->Advance(Now());
      const riffle::QueueAttributes m = model->Attributes();
      if (real.approximate_number_of_messages != m.approximate_number_of_messages ||
          real.approximate_number_of_messages_not_visible !=
              m.approximate_number_of_messages_not_visible ||
          real.approximate_number_of_messages_delayed != m.approximate_number_of_messages_delayed) {
        return fmt::format(
            "{}: {} visible, {} in flight, {} delayed; the model {}, {}, {}", name,
            real.approximate_number_of_messages, real.approximate_number_of_messages_not_visible,
            real.approximate_number_of_messages_delayed, m.approximate_number_of_messages,
            m.approximate_number_of_messages_not_visible, m.approximate_number_of_messages_delayed);
      }
    }
    return "";
  }

  std::string said_;  // the operation running, as called
  FifoConfig config_;
  riffle::ManualClock clock_;
  FifoModel model_;
  FifoModel dead_model_;
  std::unique_ptr<riffle::FifoQueue> dead_;
  std::unique_ptr<riffle::FifoQueue> queue_;
  std::vector<std::string> handles_;  // every receipt handle received, from both queues
};

}  // namespace

TEST_CASE("FifoQueue agrees with its reference model on random operation sequences",
          "[model][fifo]") {
  RunSeeds<FifoConfig, FifoOp, FifoRun>("FifoQueue", FifoConfigFor, FifoOpsFor, ToString);
}
