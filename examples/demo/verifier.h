// Per-key order checking for the demo's readers. Every demo record's data is
// "<partition key>,<counter>,<filler>", the counter counting that key's records from 0, so a
// reader can tell, from the records alone, whether it saw each key's records in order and
// whether any went missing.
#ifndef RIFFLE_EXAMPLES_DEMO_VERIFIER_H_
#define RIFFLE_EXAMPLES_DEMO_VERIFIER_H_

#include <atomic>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <map>
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

// What the readers of a run found, summed for the summary line and the JSON object.
struct Outcome {
  uint64_t order_violations = 0;
  uint64_t lost = 0;
  uint64_t corrupt = 0;
  uint64_t reported_missed = 0;
  std::map<std::string, uint64_t> records_read;  // by reader name

  // One reader that should have seen every one of `records_put` records.
  void Add(const std::string& name, const OrderVerifier& v, uint64_t records_put,
           uint64_t missed = 0) {
    records_read[name] = v.records();
    order_violations += v.order_violations();
    corrupt += v.corrupt();
    lost += records_put > v.records() ? records_put - v.records() : 0;
    reported_missed += missed;
  }

  void PrintReaders() const {
    for (const auto& [name, n] : records_read) {
      std::printf("  %-8s read %llu records\n", name.c_str(), static_cast<unsigned long long>(n));
    }
  }

  void PrintVerdict(double seconds) const {
    std::printf("  order violations %llu, lost %llu (reported missed %llu), corrupt %llu, %.2f s\n",
                static_cast<unsigned long long>(order_violations),
                static_cast<unsigned long long>(lost),
                static_cast<unsigned long long>(reported_missed),
                static_cast<unsigned long long>(corrupt), seconds);
  }

  // The JSON fields every pipeline prints, from "records_put" to "put_records_per_second".
  std::string JsonFields(uint64_t records_put, uint64_t put_errors, int producers, int shards,
                         std::size_t record_bytes, int reshards, double seconds,
                         double put_seconds) const {
    std::string readers;
    for (const auto& [name, n] : records_read) {
      readers += fmt::format("{}\"{}\":{}", readers.empty() ? "" : ",", name, n);
    }
    return fmt::format(
        "\"records_put\":{},\"records_read\":{{{}}},\"order_violations\":{},\"lost\":{},"
        "\"missed_reported\":{},\"corrupt\":{},\"put_errors\":{},\"producers\":{},\"shards\":{},"
        "\"record_bytes\":{},\"reshards\":{},\"seconds\":{:.3f},\"put_records_per_second\":{:.0f}",
        records_put, readers, order_violations, lost, reported_missed, corrupt, put_errors,
        producers, shards, record_bytes, reshards, seconds, records_put / put_seconds);
  }

  bool ok() const { return order_violations == 0 && lost == 0 && corrupt == 0; }
};

}  // namespace demo

#endif  // RIFFLE_EXAMPLES_DEMO_VERIFIER_H_
