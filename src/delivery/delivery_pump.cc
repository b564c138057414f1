// DeliveryStream's pump: everything that happens after records are buffered. It runs on
// the delivery thread or the host's Poll()/Flush()/Close() call, under pump_mu_ and never
// under mu_ (the producers' lock) while it processes, compresses or calls a sink.
#include <algorithm>
#include <exception>
#include <optional>
#include <utility>

#include "absl/strings/escaping.h"
#include "delivery/delivery_stream_impl.h"
#include "fmt/format.h"

namespace riffle {
namespace {

constexpr size_t kMaxObjectBytes = 0xffffffffu;
// How long the service keeps retrying data it cannot deliver to S3 before discarding it.
constexpr absl::Duration kErrorOutputRetention = absl::Hours(24);

template <class Fn>
absl::Status CallSink(Fn&& fn) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return InternalFailureError(fmt::format("The sink threw: {}", e.what()));
  } catch (...) {
    return InternalFailureError("The sink threw a non-standard exception.");
  }
}

}  // namespace

thread_local const DeliveryStream::Impl* DeliveryStream::Impl::pumping_ = nullptr;

absl::Status DeliveryStream::Impl::CalledFromCallbackError(std::string_view call) const {
  return ResourceInUseError(
      fmt::format("{} was called from inside a callback (processor or sink) of delivery stream "
                  "{}, which would wait for that callback to return; call it from another "
                  "thread.",
                  call, name()));
}

size_t DeliveryStream::Impl::PumpLocked(bool flush_all) {
  struct Pumping {
    explicit Pumping(const Impl* impl) : previous(std::exchange(pumping_, impl)) {}
    ~Pumping() { pumping_ = previous; }
    const Impl* previous;
  } pumping(this);
  const size_t polled = stream_source_ ? PollStreamSource() : 0;
  const absl::Time now = clock_->Now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    // A poll that found records is followed by another at once; an empty one waits.
    if (stream_source_) source_next_poll_ = polled > 0 ? now : now + options_.source_poll_interval;
    // Once Close() has begun, whatever the reader ingested is sealed at once.
    SealDueLocked(now, flush_all || stopping_);
    pump_work_.swap(ready_);
    const bool retry_now = std::exchange(retry_now_, false);
    for (auto& b : retrying_) {
      if (retry_now || b->next_attempt <= now) pump_work_.push_back(std::move(b));
    }
    std::erase(retrying_, nullptr);
    for (auto& e : put_errors_) pump_errors_.push_back(std::move(e));
    put_errors_.clear();
    for (auto& o : error_retrying_) {
      if (retry_now || o.next_attempt <= now) {
        pump_error_objects_.push_back(std::move(o));
        o.key.clear();  // marks the slot as taken
      }
    }
    std::erase_if(error_retrying_, [](const detail::ErrorObject& o) { return o.key.empty(); });
    in_pump_ =
        static_cast<int>(pump_work_.size() + pump_errors_.size() + pump_error_objects_.size());
    in_pump_oldest_ms_ = clock_->NowMillis();
    for (const auto& b : pump_work_) {
      in_pump_oldest_ms_ = std::min(in_pump_oldest_ms_, b->oldest_arrival_ms);
    }
    for (const auto& e : pump_errors_)
      in_pump_oldest_ms_ = std::min(in_pump_oldest_ms_, e.arrival_ms);
    for (const auto& o : pump_error_objects_) {
      in_pump_oldest_ms_ = std::min(in_pump_oldest_ms_, o.oldest_arrival_ms);
    }
  }
  if (in_pump_ == 0) return 0;  // written only under pump_mu_, which we hold

  size_t written = 0;
  for (auto& b : pump_work_) {
    if (!b->prepared) Prepare(*b, now);
    if (b->output_records == 0) {
      pump_done_.push_back(std::move(b));
    } else if (Attempt(*b, now)) {
      if (b->output_records != 0) ++written;  // ExhaustRetries resolves them to errors
      pump_done_.push_back(std::move(b));
    } else {
      pump_retry_.push_back(std::move(b));
    }
  }
  pump_work_.clear();

  BuildErrorObjects(now);
  for (auto& o : pump_error_objects_) {
    const ErrorObjectOutcome outcome = AttemptErrorObject(o, now);
    if (outcome == ErrorObjectOutcome::kRetry) continue;
    if (outcome == ErrorObjectOutcome::kWritten) ++written;
    o.key.clear();
  }
  std::erase_if(pump_error_objects_, [](const detail::ErrorObject& o) { return o.key.empty(); });

  std::lock_guard<std::mutex> lock(mu_);
  for (auto& b : pump_retry_) retrying_.push_back(std::move(b));
  pump_retry_.clear();
  for (auto& o : pump_error_objects_) error_retrying_.push_back(std::move(o));
  pump_error_objects_.clear();
  for (auto& b : pump_done_) {
    if (free_batches_.size() < 4) {
      b->Reset();
      free_batches_.push_back(std::move(b));
    }
  }
  pump_done_.clear();
  buffered_bytes_ -= pump_released_bytes_;
  pump_released_bytes_ = 0;
  if (pump_wrote_) step_status_ = std::exchange(pump_error_, absl::OkStatus());
  pump_wrote_ = false;
  in_pump_ = 0;
  WakeLocked();  // Close() and the delivery thread re-check what is pending
  return written;
}

void DeliveryStream::Impl::Prepare(detail::Batch& b, absl::Time now) {
  b.prepared = true;
  b.first_attempt = now;
  const bool delimit = options_.append_newline_delimiter;
  int calls = 1;  // the processor's, for attemptsMade
  auto fail = [&](const detail::BufferedRecord& r, std::string_view code, std::string message) {
    ++processing_failed_records_;
    pump_errors_.push_back({detail::kProcessingFailedOutput, std::string(code), std::move(message),
                            r.record_id, calls, r.arrival_ms, absl::ToUnixMillis(now),
                            b.data.substr(r.data_offset, r.data_size), r.data_size});
  };
  if (options_.processor) {
    processor_inputs_.clear();
    for (size_t i = 0; i < b.records.size(); ++i) {
      const detail::BufferedRecord& r = b.records[i];
      const detail::RecordMeta m = i < b.meta_index.size() ? b.meta_index[i] : detail::RecordMeta{};
      const std::string_view meta = std::string_view(b.meta).substr(m.offset);
      processor_inputs_.push_back(
          {r.record_id,
           std::string_view(b.data).substr(r.data_offset, r.data_size),
           {meta.substr(0, m.partition_key_size),
            meta.substr(m.partition_key_size, m.shard_id_size),
            meta.substr(m.partition_key_size + m.shard_id_size, m.sequence_number_size),
            r.arrival_ms, m.subsequence_number}});
    }
    std::vector<ProcessorOutput> answers;
    std::string threw;
    // A failed invocation is retried at once, as the service retries its Lambda.
    for (calls = 1;; ++calls) {
      threw.clear();
      try {
        answers = options_.processor(processor_inputs_);
      } catch (const std::exception& e) {
        threw = fmt::format("The processor threw: {}", e.what());
      } catch (...) {
        threw = "The processor threw a non-standard exception.";
      }
      if (threw.empty() || calls > options_.processor_retries) break;
    }
    // Record ids in a batch are strictly increasing, so answers are matched by binary search.
    // kRepeated: more than one answer for the record.
    constexpr int kRepeated = -2;
    std::vector<int> answer_of(b.records.size(), -1);
    // An answer for an id the invocation did not hold: the answers do not match the records
    // (an off-by-one processor gives each record its neighbour's data), so none is trusted.
    std::optional<uint64_t> stray_id;
    for (size_t j = 0; j < answers.size(); ++j) {
      auto it = std::lower_bound(
          b.records.begin(), b.records.end(), answers[j].record_id,
          [](const detail::BufferedRecord& r, uint64_t id) { return r.record_id < id; });
      if (it != b.records.end() && it->record_id == answers[j].record_id) {
        int& slot = answer_of[static_cast<size_t>(it - b.records.begin())];
        slot = slot == -1 ? static_cast<int>(j) : kRepeated;
      } else if (!stray_id) {
        stray_id = answers[j].record_id;
      }
    }
    b.transformed = true;
    for (size_t i = 0; i < b.records.size(); ++i) {
      const detail::BufferedRecord& r = b.records[i];
      if (!threw.empty()) {
        fail(r, kLambdaFunctionError, threw);
        continue;
      }
      if (stray_id) {
        fail(r, kLambdaMissingRecordId,
             fmt::format("The processor returned a result for record id {}, which was not in "
                         "its invocation: the results do not match the records.",
                         *stray_id));
        continue;
      }
      if (answer_of[i] == kRepeated) {
        fail(r, kLambdaDuplicatedRecordId,
             fmt::format("The processor returned more than one result for record id {}.",
                         r.record_id));
        continue;
      }
      if (answer_of[i] < 0) {
        fail(r, kLambdaMissingRecordId,
             fmt::format("The processor returned no result for record id {}.", r.record_id));
        continue;
      }
      ProcessorOutput& a = answers[static_cast<size_t>(answer_of[i])];
      switch (a.result) {
        case ProcessingResult::kOk: {
          // Offsets are 32-bit: an object over 4 GiB would also be refused by most sinks.
          if (b.processed.size() + a.data.size() + 1 > kMaxObjectBytes) {
            fail(r, kLambdaProcessingFailed,
                 fmt::format("The processed records exceed {} bytes in one object.",
                             kMaxObjectBytes));
            break;
          }
          const uint32_t offset = static_cast<uint32_t>(b.processed.size());
          b.processed.append(a.data);
          if (delimit) b.processed.push_back('\n');
          b.output.push_back({r.record_id, r.arrival_ms, offset,
                              static_cast<uint32_t>(b.processed.size() - offset), r.data_size});
          break;
        }
        case ProcessingResult::kDropped:
          dropped_records_.fetch_add(1, std::memory_order_relaxed);
          pump_released_bytes_ += r.data_size;
          break;
        case ProcessingResult::kProcessingFailed:
          fail(r, kLambdaProcessingFailed, "ProcessingFailed status set for record");
          break;
        default:  // a value outside the enum, as the service refuses a result it does not know
          fail(r, kLambdaProcessingFailed,
               fmt::format("The processor answered result {} for record id {}; it must be Ok, "
                           "Dropped or ProcessingFailed.",
                           static_cast<int>(a.result), r.record_id));
      }
    }
  } else if (delimit) {
    b.transformed = true;
    for (const auto& r : b.records) {
      const uint32_t offset = static_cast<uint32_t>(b.processed.size());
      b.processed.append(b.data, r.data_offset, r.data_size).push_back('\n');
      b.output.push_back({r.record_id, r.arrival_ms, offset, r.data_size + 1, r.data_size});
    }
  }
  if (b.transformed) {
    b.output_records = b.output.size();
    b.output_bytes = b.processed.size();
    for (const auto& r : b.output) b.output_source_bytes += r.source_size;
  } else {
    b.output_records = b.records.size();
    b.output_bytes = b.output_source_bytes = b.data.size();
  }
  if (b.output_records == 0) return;

  const std::string_view source = b.transformed ? b.processed : b.data;
  const std::string_view extension = detail::FileExtension(options_.compression);
  prefix_.Evaluate(absl::FromUnixMillis(b.oldest_arrival_ms), b.partition_values, "", rng_, &b.key);
  detail::AppendObjectName(name(), options_.version, now, rng_, extension, &b.key);
  if (options_.compression == CompressionFormat::kUncompressed) {
    b.payload = source;
    return;
  }
  std::string_view entry = b.key;
  entry = entry.substr(entry.rfind('/') + 1);
  entry.remove_suffix(extension.size());
  absl::Status s = compressor_->Compress(source, entry, &b.compressed);
  if (!s.ok()) {
    NoteWrite(s);
    ExhaustRetries(b, s, now);
    return;
  }
  b.payload = b.compressed;
}

bool DeliveryStream::Impl::Attempt(detail::Batch& b, absl::Time now) {
  ++b.attempts;
  delivery_attempts_.fetch_add(1, std::memory_order_relaxed);
  const absl::Status s = CallSink([&] { return options_.sink->PutObject(b.key, b.payload); });
  NoteWrite(s);
  if (s.ok()) {
    pump_released_bytes_ += static_cast<int64_t>(b.output_source_bytes);
    delivery_objects_.fetch_add(1, std::memory_order_relaxed);
    delivery_records_.fetch_add(b.output_records, std::memory_order_relaxed);
    delivery_bytes_.fetch_add(b.output_bytes, std::memory_order_relaxed);
    return true;
  }
  const absl::Time deadline = b.first_attempt + retry_duration_;
  if (now >= deadline) {
    ExhaustRetries(b, s, now);
    return true;
  }
  b.next_attempt = std::min(now + Backoff(b.attempts), deadline);
  return false;
}

void DeliveryStream::Impl::ExhaustRetries(detail::Batch& b, const absl::Status& status,
                                          absl::Time now) {
  delivery_failed_records_.fetch_add(b.output_records, std::memory_order_relaxed);
  const std::string code(ErrorName(status));
  const std::string message = ErrorMessage(status);
  auto add = [&](uint64_t id, int64_t arrival_ms, std::string_view data, uint64_t source_size) {
    pump_errors_.push_back({detail::kDeliveryFailedOutput, code, message, id, b.attempts,
                            arrival_ms, absl::ToUnixMillis(now), std::string(data), source_size});
  };
  if (b.transformed) {
    for (const auto& r : b.output) add(r.record_id, r.arrival_ms, b.OutputData(r), r.source_size);
  } else {
    for (const auto& r : b.records) {
      add(r.record_id, r.arrival_ms, std::string_view(b.data).substr(r.data_offset, r.data_size),
          r.data_size);
    }
  }
  b.output.clear();
  b.output_records = 0;
}

void DeliveryStream::Impl::NoteWrite(const absl::Status& status) {
  pump_wrote_ = true;
  if (!status.ok() && pump_error_.ok()) pump_error_ = status;
}

absl::Duration DeliveryStream::Impl::Backoff(int attempts) {
  absl::Duration d = options_.retry_options.initial_backoff;
  for (int i = 1; i < attempts && d < options_.retry_options.max_backoff; ++i) d *= 2;
  d = std::min(d, options_.retry_options.max_backoff);
  // Jitter in [d/2, d] from the stream's generator, so seeded runs repeat exactly.
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
  return d / 2 + (d / 2) * u;
}

void DeliveryStream::Impl::BuildErrorObjects(absl::Time now) {
  if (pump_errors_.empty()) return;
  // Grouped by error output type, records in acceptance order.
  std::stable_sort(pump_errors_.begin(), pump_errors_.end(),
                   [](const detail::ErrorRecord& a, const detail::ErrorRecord& b) {
                     return a.output_type < b.output_type;
                   });
  for (size_t i = 0; i < pump_errors_.size();) {
    const std::string_view type = pump_errors_[i].output_type;
    detail::ErrorObject o;
    int64_t oldest_ms = INT64_MAX;
    // Objects are cut at the size hint so an error object stays as readable as a batch.
    for (; i < pump_errors_.size() && pump_errors_[i].output_type == type &&
           (o.records == 0 || o.body.size() < size_hint_bytes_);
         ++i) {
      const detail::ErrorRecord& e = pump_errors_[i];
      oldest_ms = std::min(oldest_ms, e.arrival_ms);
      fmt::format_to(std::back_inserter(o.body),
                     R"({{"attemptsMade":{},"arrivalTimestamp":{},"errorCode":)", e.attempts,
                     e.arrival_ms);
      detail::AppendJsonString(e.error_code, &o.body);
      o.body.append(",\"errorMessage\":");
      detail::AppendJsonString(e.error_message, &o.body);
      fmt::format_to(std::back_inserter(o.body),
                     R"(,"attemptEndingTimestamp":{},"recordId":"{}","deliveryStreamName":)",
                     e.attempt_ending_ms, e.record_id);
      detail::AppendJsonString(name(), &o.body);
      o.body.append(",\"rawData\":\"");
      o.body.append(absl::Base64Escape(absl::string_view(e.raw_data.data(), e.raw_data.size())));
      o.body.push_back('"');
      if (type == detail::kProcessingFailedOutput && !options_.processor_arn.empty()) {
        o.body.append(",\"lambdaArn\":");
        detail::AppendJsonString(options_.processor_arn, &o.body);
      }
      o.body.append("}\n");
      ++o.records;
      o.accounted_bytes += e.accounted_bytes;
    }
    // As the service: the prefix's time is the oldest record's arrival, the name's the write.
    o.oldest_arrival_ms = oldest_ms;
    error_prefix_.Evaluate(absl::FromUnixMillis(oldest_ms), {}, type, rng_, &o.key);
    detail::AppendObjectName(name(), options_.version, now, rng_, "", &o.key);
    pump_error_objects_.push_back(std::move(o));
  }
  pump_errors_.clear();
}

DeliveryStream::Impl::ErrorObjectOutcome DeliveryStream::Impl::AttemptErrorObject(
    detail::ErrorObject& o, absl::Time now) {
  if (o.attempts++ == 0) o.first_attempt = now;
  error_output_attempts_.fetch_add(1, std::memory_order_relaxed);
  const absl::Status s = CallSink([&] { return error_sink_->PutObject(o.key, o.body); });
  NoteWrite(s);
  if (s.ok()) {
    error_output_objects_.fetch_add(1, std::memory_order_relaxed);
    error_output_records_.fetch_add(o.records, std::memory_order_relaxed);
    pump_released_bytes_ += static_cast<int64_t>(o.accounted_bytes);
    return ErrorObjectOutcome::kWritten;
  }
  // The error output is the last resort: retried with backoff for as long as the service
  // keeps data it cannot deliver to S3 (24 hours), then discarded and counted.
  if (now - o.first_attempt >= kErrorOutputRetention) {
    error_output_discarded_records_.fetch_add(o.records, std::memory_order_relaxed);
    pump_released_bytes_ += static_cast<int64_t>(o.accounted_bytes);
    return ErrorObjectOutcome::kDiscarded;
  }
  o.next_attempt = std::min(now + Backoff(o.attempts), o.first_attempt + kErrorOutputRetention);
  return ErrorObjectOutcome::kRetry;
}

}  // namespace riffle
