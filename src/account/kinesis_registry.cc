#include "account/kinesis_registry.h"

#include <algorithm>
#include <cstring>

#include "riffle/detail/epoch.h"

namespace riffle::detail {
namespace {

constexpr std::size_t kDeletedNamesKept = 1024;
constexpr int64_t kDayMs = 86'400'000;
constexpr int64_t kPeakWindowDays = 30;

int64_t FloorDiv(int64_t a, int64_t b) { return a >= 0 ? a / b : (a - b + 1) / b; }

std::atomic<uint64_t> next_generation{1};

}  // namespace

bool RollingWindow::Allows(int64_t now_ms, int64_t window_ms, std::size_t max) {
  while (!times_.empty() && times_.front() <= now_ms - window_ms) times_.pop_front();
  return times_.size() < max;
}

bool OnDemandMeter::Add(int64_t now_ms, uint64_t bytes, uint64_t records) {
  const int64_t second = FloorDiv(now_ms, 1000);
  bool closed = false;
  if (second != second_) {
    if (second_ != INT64_MIN) {
      // Close the last second: it counts towards its day's peak.
      const int64_t day = FloorDiv(second_ * 1000, kDayMs);
      Day& d = days_[static_cast<std::size_t>(((day % 31) + 31) % 31)];
      if (d.day != day) d = Day{day, 0, 0};
      d.bytes = std::max(d.bytes, bytes_);
      d.records = std::max(d.records, records_);
      closed = true;
    }
    second_ = second;
    bytes_ = 0;
    records_ = 0;
  }
  bytes_ += bytes;
  records_ += records;
  return closed;
}

void OnDemandMeter::Peak(int64_t now_ms, uint64_t* bytes, uint64_t* records) const {
  const int64_t today = FloorDiv(now_ms, kDayMs);
  *bytes = 0;
  *records = 0;
  for (const Day& d : days_) {
    if (d.day == INT64_MIN || d.day <= today - kPeakWindowDays || d.day > today) continue;
    *bytes = std::max(*bytes, d.bytes);
    *records = std::max(*records, d.records);
  }
}

KinesisRegistry::KinesisRegistry() : current_(new Snapshot) {
  const_cast<Snapshot*>(current_.load(std::memory_order_relaxed))->generation =
      next_generation.fetch_add(1, std::memory_order_relaxed);
}

KinesisRegistry::~KinesisRegistry() {
  // No caller is left (the account is being destroyed): free the snapshot, and with it the
  // streams; retired snapshots go with the next collection.
  delete current_.load(std::memory_order_acquire);
  CollectRetired();
}

StreamEntry* KinesisRegistry::FindByNameSlow(const Snapshot& s, std::string_view name) {
  auto it = s.by_name.find(absl::string_view(name.data(), name.size()));
  if (it == s.by_name.end()) return nullptr;
  LastFoundStream& last = tls_last_found_stream;
  if (name.size() <= sizeof(last.name)) {
    last.generation = s.generation;
    last.length = name.size();
    std::memcpy(last.name, name.data(), name.size());
    last.entry = it->second.get();
  }
  return it->second.get();
}

StreamEntry* KinesisRegistry::FindByTag(uint64_t tag) const {
  const Snapshot& s = *current_.load(std::memory_order_acquire);
  auto it = s.by_tag.find(tag);
  return it == s.by_tag.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<StreamEntry>> KinesisRegistry::All() const {
  EpochGuard guard;
  const Snapshot& s = *current_.load(std::memory_order_acquire);
  std::vector<std::shared_ptr<StreamEntry>> all;
  all.reserve(s.by_name.size());
  for (const auto& [name, e] : s.by_name) all.push_back(e);
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a->name < b->name; });
  return all;
}

void KinesisRegistry::Publish(Snapshot* next) {
  next->generation = next_generation.fetch_add(1, std::memory_order_relaxed);
  const Snapshot* old = current_.exchange(next, std::memory_order_acq_rel);
  RetireObject(const_cast<Snapshot*>(old));
  // A deleted stream is freed here when no caller is inside it.
  CollectRetired();
}

void KinesisRegistry::Add(std::shared_ptr<StreamEntry> entry) {
  auto* next = new Snapshot(*current_.load(std::memory_order_acquire));
  next->by_tag[entry->tag] = entry.get();
  next->by_name[entry->name] = std::move(entry);
  Publish(next);
}

void KinesisRegistry::Remove(const StreamEntry& entry) {
  {
    std::lock_guard<std::mutex> lock(deleted_mu_);
    deleted_.emplace_back(entry.tag, entry.name);
    if (deleted_.size() > kDeletedNamesKept) deleted_.pop_front();
  }
  auto* next = new Snapshot(*current_.load(std::memory_order_acquire));
  next->by_tag.erase(entry.tag);
  next->by_name.erase(entry.name);
  Publish(next);
}

std::optional<std::string> KinesisRegistry::DeletedName(uint64_t tag) const {
  std::lock_guard<std::mutex> lock(deleted_mu_);
  for (auto it = deleted_.rbegin(); it != deleted_.rend(); ++it) {
    if (it->first == tag) return it->second;
  }
  return std::nullopt;
}

}  // namespace riffle::detail
