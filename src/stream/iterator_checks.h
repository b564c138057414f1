// The checks of iterators and iterator requests that every RecordSource backend shares, so
// that riffle::Stream and the Kafka-backed stream answer the same input with the same error
// name and message. Defined in src/stream/stream.cc.
#ifndef RIFFLE_STREAM_ITERATOR_CHECKS_H_
#define RIFFLE_STREAM_ITERATOR_CHECKS_H_

#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "riffle/record_source.h"

namespace riffle::detail {

// InvalidArgumentException when the request's members do not fit its ShardIteratorType
// (a sequence number for AT_/AFTER_SEQUENCE_NUMBER only, a timestamp for AT_TIMESTAMP only).
absl::Status CheckIteratorRequest(const GetShardIteratorRequest& request);

// InvalidArgumentException for an iterator `stream_name` did not issue (altered, forged,
// another stream's).
absl::Status IteratorNotIssuedError(const ShardIterator& it, std::string_view stream_name);

// ExpiredIteratorException when `it` is older than `lifetime_ms` at `now_ms`; OK otherwise.
// An iterator issued "in the future" (a clock set back) is not expired.
absl::Status IteratorAgeError(const ShardIterator& it, int64_t now_ms, int64_t lifetime_ms);

}  // namespace riffle::detail

#endif  // RIFFLE_STREAM_ITERATOR_CHECKS_H_
