// Per-key order checking for the demo's readers. Every demo record's data is
// "<partition key>,<counter>,<filler>", the counter counting that key's records from 0, so a
// reader can tell, from the records alone, whether it saw each key's records in order and
// whether any went missing.
#ifndef RIFFLE_EXAMPLES_DEMO_VERIFIER_H_
#define RIFFLE_EXAMPLES_DEMO_VERIFIER_H_

#include <atomic>
#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fmt/format.h"

namespace demo {

// Keys are "p<producer>-k<key>"; the index of a key is producer * keys_per_producer + key.
inline std::string KeyName(int producer, int key) { return fmt::format("p{}-k{}", producer, key); }

inline std::string MakeData(std::string_view key, uint64_t counter, std::size_t record_bytes) {
  std::string d = fmt::format("{},{},", key, counter);
  if (d.size() < record_bytes) d.append(record_bytes - d.size(), 'x');
  return d;
}

class OrderVerifier {
 public:
  OrderVerifier(int producers, int keys_per_producer)
      : keys_per_producer_(keys_per_producer),
        next_(static_cast<std::size_t>(producers * keys_per_producer), 0) {}

  // Checks one record; thread-compatible (one verifier per reader).
  void See(std::string_view key, std::string_view data) {
    int producer = 0, k = 0;
    uint64_t counter = 0;
    if (!ParseKey(key, &producer, &k) || !ParseCounter(key, data, &counter) ||
        static_cast<std::size_t>(producer * keys_per_producer_ + k) >= next_.size()) {
      ++corrupt_;
      return;
    }
    uint64_t& next = next_[static_cast<std::size_t>(producer * keys_per_producer_ + k)];
    if (counter < next) {
      ++order_violations_;  // went backwards: reordered or duplicated
    } else {
      gaps_ += counter - next;
      next = counter + 1;
    }
    records_.fetch_add(1, std::memory_order_relaxed);
  }

  uint64_t records() const { return records_.load(std::memory_order_relaxed); }
  uint64_t order_violations() const { return order_violations_; }
  uint64_t gaps() const { return gaps_; }
  uint64_t corrupt() const { return corrupt_; }

 private:
  static bool ParseKey(std::string_view key, int* producer, int* k) {
    if (key.size() < 4 || key[0] != 'p') return false;
    const auto dash = key.find("-k");
    if (dash == std::string_view::npos) return false;
    auto r1 = std::from_chars(key.data() + 1, key.data() + dash, *producer);
    auto r2 = std::from_chars(key.data() + dash + 2, key.data() + key.size(), *k);
    return r1.ec == std::errc() && r2.ec == std::errc() && r2.ptr == key.data() + key.size();
  }
  static bool ParseCounter(std::string_view key, std::string_view data, uint64_t* counter) {
    if (data.size() <= key.size() + 1 || data.substr(0, key.size()) != key ||
        data[key.size()] != ',') {
      return false;
    }
    const char* begin = data.data() + key.size() + 1;
    auto r = std::from_chars(begin, data.data() + data.size(), *counter);
    return r.ec == std::errc() && r.ptr < data.data() + data.size() && *r.ptr == ',';
  }

  int keys_per_producer_;
  std::vector<uint64_t> next_;
  std::atomic<uint64_t> records_{0};  // read by the progress line
  uint64_t order_violations_ = 0;
  uint64_t gaps_ = 0;
  uint64_t corrupt_ = 0;
};

}  // namespace demo

#endif  // RIFFLE_EXAMPLES_DEMO_VERIFIER_H_
