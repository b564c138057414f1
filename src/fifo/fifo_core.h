// The state machine of a FifoQueue, without locking (the queue holds one mutex around it).
//
// Storage: messages live in a pool of slots (vector + free list) that are reused, strings
// keeping their capacity, so steady-state traffic does not allocate. A message is named
// by (slot, generation); the generation changes on every receive and on release, so a
// receipt handle that encodes both is checked in O(1) without any string lookup.
//
// Each slot is on exactly one of these, by state:
//   kDelayed   the delayed list (arrival order; the queue delay is constant, so FIFO)
//   kQueued    its group's queue (sequence order)
//   kInFlight  the visibility heap (min-heap on deadline, slot keeps its heap position)
//              and its group's in-flight list (sequence order)
// and, while alive, on the age list (arrival order) that retention trims from the front.
//
// Invariants:
//   1. A group is on the ready list iff its queue is non-empty and its first queued message
//      precedes (in sequence) every message of the group in flight. As in SQS, a message
//      whose visibility ends before later messages of its group are done is receivable
//      again at once; the later ones, while it is in flight, are not.
//   2. A receive takes from the front of a ready group, in order, while no message in
//      flight from before precedes the next one: the messages one receive takes from a
//      group precede every message of the group that was in flight before it. A message
//      whose visibility ends is put back in sequence order (a short walk).
//   3. A group with no live message waits on the idle list; past kMaxIdleGroups the oldest
//      idle group is forgotten, so unique group ids do not grow memory without bound.
//   4. Serials (sequence numbers) increase along the age list: messages enter in send
//      order, so retention trims from the front.
#ifndef RIFFLE_DETAIL_FIFO_CORE_H_
#define RIFFLE_DETAIL_FIFO_CORE_H_

#include <cassert>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/numeric/int128.h"
#include "riffle/fifo_queue.h"

namespace riffle::detail {

inline constexpr uint32_t kNil = 0xFFFFFFFFu;

// A growable ring (FIFO) that reuses its buffer: no allocation once it has grown.
template <class T>
class FifoRing {
 public:
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  T& front() { return buf_[head_]; }
  void pop_front() {
    head_ = (head_ + 1) & (buf_.size() - 1);
    --size_;
  }
  void push_back(T value) {
    if (size_ == buf_.size()) Grow();
    buf_[(head_ + size_) & (buf_.size() - 1)] = std::move(value);
    ++size_;
  }
  void clear() { head_ = size_ = 0; }

 private:
  void Grow() {
    std::vector<T> bigger(buf_.empty() ? 64 : buf_.size() * 2);
    for (size_t i = 0; i < size_; ++i) bigger[i] = std::move(buf_[(head_ + i) & (buf_.size() - 1)]);
    buf_.swap(bigger);
    head_ = 0;
  }
  std::vector<T> buf_;
  size_t head_ = 0;
  size_t size_ = 0;
};

// Deduplication ids seen in the last 5 minutes, by 128-bit fingerprint of (scope, id),
// with the serial of the message first sent under each. A message's id is a function of
// its serial, so the serial is all a duplicate needs to be answered like the original.
class FifoDedup {
 public:
  static constexpr int64_t kWindowNs = 300'000'000'000;  // 5 minutes.

  void Prefetch(absl::uint128 fingerprint) const { map_.prefetch(fingerprint); }
  // Records `serial` under `fingerprint` and returns it, or returns the serial first sent
  // under it within the window (one hash probe either way).
  uint64_t FindOrInsert(absl::uint128 fingerprint, uint64_t serial, int64_t now) {
    auto [it, inserted] = map_.try_emplace(fingerprint, serial);
    if (inserted) ring_.push_back({now + kWindowNs, serial, fingerprint});
    return it->second;
  }
  void Clear() {
    map_.clear();
    ring_.clear();
  }
  // Forgets what was sent more than the window before `now` (sends come in time order).
  void Expire(int64_t now) {
    while (!ring_.empty() && ring_.front().expires_ns <= now) {
      const Expiry& e = ring_.front();
      auto it = map_.find(e.fingerprint);
      // A later send with the same id, after this one expired, owns the entry now.
      if (it != map_.end() && it->second == e.serial) map_.erase(it);
      ring_.pop_front();
    }
  }

 private:
  // Fingerprints are uniformly spread already: 64 of their bits are a good hash.
  struct FingerprintHash {
    size_t operator()(absl::uint128 f) const { return static_cast<size_t>(absl::Uint128Low64(f)); }
  };
  struct Expiry {
    int64_t expires_ns;
    uint64_t serial;
    absl::uint128 fingerprint;
  };
  absl::flat_hash_map<absl::uint128, uint64_t, FingerprintHash> map_;
  FifoRing<Expiry> ring_;
};

enum class SlotState : uint8_t { kFree, kDelayed, kQueued, kInFlight };

// A doubly linked list of indexes into a vector of nodes, threaded through two members of
// each node (`Prev`, `Next`; kNil ends the list). The core keeps five: each group's queued
// messages, the delayed and age lists of slots, the ready and idle lists of groups.
struct IndexList {
  uint32_t head = kNil, tail = kNil;

  bool empty() const { return head == kNil; }
  template <auto Prev, auto Next, class Nodes>
  void PushBack(Nodes& nodes, uint32_t i) {
    InsertBefore<Prev, Next>(nodes, i, kNil);
  }
  // Links `i` before `before` (kNil: at the end).
  template <auto Prev, auto Next, class Nodes>
  void InsertBefore(Nodes& nodes, uint32_t i, uint32_t before) {
    const uint32_t after = before == kNil ? tail : nodes[before].*Prev;
    nodes[i].*Prev = after;
    nodes[i].*Next = before;
    (after == kNil ? head : nodes[after].*Next) = i;
    (before == kNil ? tail : nodes[before].*Prev) = i;
  }
  template <auto Prev, auto Next, class Nodes>
  void Unlink(Nodes& nodes, uint32_t i) {
    const uint32_t prev = nodes[i].*Prev, next = nodes[i].*Next;
    (prev == kNil ? head : nodes[prev].*Next) = next;
    (next == kNil ? tail : nodes[next].*Prev) = prev;
  }
};

struct FifoSlot {
  uint32_t generation = 0;
  // The generation when the slot took its current message: its receipt handles have
  // larger ones (a receive bumps the generation before it makes the handle).
  uint32_t first_generation = 0;
  SlotState state = SlotState::kFree;
  // ChangeMessageVisibility succeeded since the last receive: a ReceiveRequestAttemptId
  // retry no longer returns this receive.
  bool visibility_changed = false;
  uint32_t group = kNil;
  uint32_t prev = kNil, next = kNil;          // Group queue, in-flight or delayed list.
  uint32_t age_prev = kNil, age_next = kNil;  // Age list.
  uint32_t heap_pos = kNil;                   // While in flight.
  int32_t receive_count = 0;
  uint64_t serial = 0;           // Queue-wide, increasing: the sequence number.
  int64_t enqueued_ns = 0;       // Start of retention and of the queue delay.
  int64_t deadline_ns = 0;       // End of the delay (kDelayed) or of visibility (kInFlight).
  int64_t received_ns = 0;       // Last receive, for the 12-hour visibility cap.
  int64_t sent_ms = 0;           // SentTimestamp, kept across a dead-letter move.
  int64_t first_receive_ms = 0;  // ApproximateFirstReceiveTimestamp.
  absl::uint128 message_id = 0;
  std::string body;
  std::string dedup_id;
  std::string trace_header;                       // AWSTraceHeader; empty when none.
  std::string dead_letter_source;                 // Moved here from this queue; or empty.
  std::unique_ptr<MessageAttributes> attributes;  // Null when there are none.
};

enum class GroupList : uint8_t { kNone, kReady, kIdle };

struct FifoGroup {
  std::string id;
  IndexList queued;     // Queued messages, in sequence order.
  IndexList in_flight;  // Messages in flight, in sequence order.
  uint32_t live = 0;    // Delayed + queued + in flight.
  GroupList list = GroupList::kNone;
  uint32_t link_prev = kNil, link_next = kNil;  // Ready or idle list.
};

class FifoCore {
 public:
  static constexpr size_t kMaxIdleGroups = 1024;

  struct Config {
    int64_t retention_ns;
    int64_t delay_ns;
  };
  explicit FifoCore(Config config) : config_(config) {}

  const Config& config() const { return config_; }
  // A new retention and queue delay. Messages still delayed get the new delay from their
  // arrival (the delayed list stays in arrival order, so stays sorted by deadline).
  void SetConfig(Config config) {
    config_ = config;
    for (uint32_t s = delayed_.head; s != kNil; s = slots_[s].next) {
      slots_[s].deadline_ns = slots_[s].enqueued_ns + config_.delay_ns;
    }
  }

  // Applies every time rule due at `now`: delays that ended, visibilities that ended,
  // retention.
  void Advance(int64_t now);
  // The next time at which Advance would make a message visible (INT64_MAX if none).
  int64_t NextWakeNs() const;

  // Stores a new message at the tail of its group (after the queue delay, if any). Takes
  // `body` and `dedup_id` by swapping strings with the slot, so buffers circulate between
  // the caller and the pool instead of being allocated. REQUIRES: serials increase.
  uint32_t Enqueue(std::string_view group_id, std::string& body, std::string& dedup_id,
                   uint64_t serial, int64_t now);

  // The first ready group (kNil if none) and its first queued message.
  uint32_t FirstReadyGroup() const { return ready_.head; }
  uint32_t GroupHead(uint32_t g) const { return groups_[g].queued.head; }
  // Whether a receive may take group g's first queued message next, given `last`, the last
  // message it took from g (kNil: none yet): no message in flight from before it precedes.
  bool HeadTakeable(uint32_t g, uint32_t last) const {
    const FifoGroup& group = groups_[g];
    if (group.queued.empty()) return false;
    // The messages this receive took are the first ones in flight (invariant 2).
    const uint32_t bound = last == kNil ? group.in_flight.head : slots_[last].next;
    return bound == kNil || slots_[bound].serial > slots_[group.queued.head].serial;
  }
  bool HasReady() const { return !ready_.empty(); }

  // kQueued -> kInFlight until `deadline`; bumps generation and receive count.
  void MarkInFlight(uint32_t s, int64_t now, int64_t deadline);
  // Moves the visibility deadline of an in-flight message; at or before `now` it becomes
  // visible again at once.
  void SetDeadline(uint32_t s, int64_t deadline, int64_t now);
  // Deletes a live message in any state.
  void Remove(uint32_t s);
  void RemoveAll() {
    while (!age_.empty()) Remove(age_.head);
  }

  // What a receipt handle of this queue (slot, generation) names now.
  enum class HandleState {
    kCurrent,     // the latest receive of a message still in flight under it
    kExpired,     // the latest receive, but its visibility timeout has ended
    kSuperseded,  // an earlier receive of a message received again since
    kGone,        // a message no longer in the queue (deleted, moved, purged, aged out)
    kNeverIssued  // no receive made it
  };
  HandleState Lookup(uint32_t s, uint32_t generation) const {
    if (s >= slots_.size()) return HandleState::kNeverIssued;
    const FifoSlot& slot = slots_[s];
    // Generations only grow (wrapping after 2^32 receives of one slot, which is ignored).
    if (generation > slot.generation) return HandleState::kNeverIssued;
    if (slot.state == SlotState::kFree || generation <= slot.first_generation) {
      return HandleState::kGone;
    }
    if (generation < slot.generation) return HandleState::kSuperseded;
    return slot.state == SlotState::kInFlight ? HandleState::kCurrent : HandleState::kExpired;
  }
  FifoSlot& slot(uint32_t s) { return slots_[s]; }
  const FifoGroup& group(uint32_t g) const { return groups_[g]; }

  int64_t visible_count() const { return visible_; }
  int64_t in_flight_count() const { return in_flight_; }
  int64_t delayed_count() const { return delayed_count_; }

 private:
  uint32_t FindOrAddGroup(std::string_view id);
  uint32_t AllocSlot();
  void MakeVisible(uint32_t s);  // kInFlight -> kQueued, in sequence order.
  void AppendToGroup(uint32_t s);
  void UnlinkFromGroup(uint32_t s);
  void UpdateReady(uint32_t g);
  void LinkGroup(uint32_t g, GroupList list);
  void UnlinkGroup(uint32_t g);
  void HeapPush(uint32_t s);
  void HeapErase(uint32_t s);
  void HeapFix(uint32_t pos);
  bool HeapLess(uint32_t a, uint32_t b) const {
    return slots_[heap_[a]].deadline_ns < slots_[heap_[b]].deadline_ns;
  }
  void HeapSwap(uint32_t a, uint32_t b) {
    std::swap(heap_[a], heap_[b]);
    slots_[heap_[a]].heap_pos = a;
    slots_[heap_[b]].heap_pos = b;
  }

  Config config_;
  std::vector<FifoSlot> slots_;
  std::vector<uint32_t> free_slots_;
  std::vector<FifoGroup> groups_;
  std::vector<uint32_t> free_groups_;
  absl::flat_hash_map<std::string, uint32_t> group_index_;
  IndexList ready_, idle_;  // Groups, through link_prev and link_next.
  size_t idle_groups_ = 0;
  IndexList delayed_;  // Slots, through prev and next, in arrival order.
  IndexList age_;      // Every live slot, through age_prev and age_next, oldest first.
  std::vector<uint32_t> heap_;
  int64_t visible_ = 0, in_flight_ = 0, delayed_count_ = 0;
};

// ---- Implementation --------------------------------------------------------------------

inline void FifoCore::Advance(int64_t now) {
  while (!delayed_.empty() && slots_[delayed_.head].deadline_ns <= now) {
    const uint32_t s = delayed_.head;
    delayed_.Unlink<&FifoSlot::prev, &FifoSlot::next>(slots_, s);
    --delayed_count_;
    AppendToGroup(s);
  }
  while (!heap_.empty() && slots_[heap_[0]].deadline_ns <= now) MakeVisible(heap_[0]);
  while (!age_.empty() && slots_[age_.head].enqueued_ns + config_.retention_ns <= now) {
    Remove(age_.head);
  }
}

inline int64_t FifoCore::NextWakeNs() const {
  int64_t wake = INT64_MAX;
  if (!delayed_.empty()) wake = slots_[delayed_.head].deadline_ns;
  if (!heap_.empty()) wake = std::min(wake, slots_[heap_[0]].deadline_ns);
  return wake;
}

inline uint32_t FifoCore::Enqueue(std::string_view group_id, std::string& body,
                                  std::string& dedup_id, uint64_t serial, int64_t now) {
  const uint32_t g = FindOrAddGroup(group_id);
  const uint32_t s = AllocSlot();
  FifoSlot& slot = slots_[s];
  slot.first_generation = slot.generation;
  slot.group = g;
  slot.receive_count = 0;
  slot.serial = serial;
  slot.enqueued_ns = now;
  slot.first_receive_ms = 0;
  slot.body.swap(body);
  slot.dedup_id.swap(dedup_id);
  FifoGroup& group = groups_[g];
  if (group.list == GroupList::kIdle) UnlinkGroup(g);
  ++group.live;
  age_.PushBack<&FifoSlot::age_prev, &FifoSlot::age_next>(slots_, s);
  if (config_.delay_ns > 0) {
    slot.state = SlotState::kDelayed;
    slot.deadline_ns = now + config_.delay_ns;
    delayed_.PushBack<&FifoSlot::prev, &FifoSlot::next>(slots_, s);
    ++delayed_count_;
  } else {
    AppendToGroup(s);
  }
  return s;
}

inline void FifoCore::MarkInFlight(uint32_t s, int64_t now, int64_t deadline) {
  FifoSlot& slot = slots_[s];
  assert(slot.state == SlotState::kQueued);
  UnlinkFromGroup(s);
  --visible_;
  slot.state = SlotState::kInFlight;
  ++slot.generation;
  ++slot.receive_count;
  slot.received_ns = now;
  slot.visibility_changed = false;
  slot.deadline_ns = deadline;
  // After the messages in flight that precede it: this receive's earlier ones.
  IndexList& flying = groups_[slot.group].in_flight;
  uint32_t before = flying.head;
  while (before != kNil && slots_[before].serial < slot.serial) before = slots_[before].next;
  flying.InsertBefore<&FifoSlot::prev, &FifoSlot::next>(slots_, s, before);
  ++in_flight_;
  HeapPush(s);
  UpdateReady(slot.group);
}

inline void FifoCore::SetDeadline(uint32_t s, int64_t deadline, int64_t now) {
  FifoSlot& slot = slots_[s];
  assert(slot.state == SlotState::kInFlight);
  slot.deadline_ns = deadline;
  if (deadline <= now) {
    MakeVisible(s);
  } else {
    HeapFix(slot.heap_pos);
  }
}

inline void FifoCore::Remove(uint32_t s) {
  FifoSlot& slot = slots_[s];
  const uint32_t g = slot.group;
  switch (slot.state) {
    case SlotState::kDelayed:
      delayed_.Unlink<&FifoSlot::prev, &FifoSlot::next>(slots_, s);
      --delayed_count_;
      break;
    case SlotState::kQueued:
      UnlinkFromGroup(s);
      --visible_;
      break;
    case SlotState::kInFlight:
      HeapErase(s);
      groups_[g].in_flight.Unlink<&FifoSlot::prev, &FifoSlot::next>(slots_, s);
      --in_flight_;
      break;
    case SlotState::kFree:
      assert(false);
      return;
  }
  age_.Unlink<&FifoSlot::age_prev, &FifoSlot::age_next>(slots_, s);
  slot.state = SlotState::kFree;
  ++slot.generation;  // Every handle of this message is now stale.
  slot.attributes.reset();
  slot.trace_header.clear();
  slot.dead_letter_source.clear();
  // Keep small buffers for reuse; give back large ones so one big message does not pin
  // memory in a slot forever.
  if (slot.body.capacity() > 4096) std::string().swap(slot.body);
  free_slots_.push_back(s);
  FifoGroup& group = groups_[g];
  UpdateReady(g);
  if (--group.live == 0) {
    LinkGroup(g, GroupList::kIdle);
    if (++idle_groups_ > kMaxIdleGroups) {
      const uint32_t oldest = idle_.head;
      UnlinkGroup(oldest);
      group_index_.erase(groups_[oldest].id);
      free_groups_.push_back(oldest);
    }
  }
}

inline uint32_t FifoCore::FindOrAddGroup(std::string_view id) {
  auto it = group_index_.find(absl::string_view(id.data(), id.size()));
  if (it != group_index_.end()) return it->second;
  uint32_t g;
  if (!free_groups_.empty()) {
    g = free_groups_.back();
    free_groups_.pop_back();
  } else {
    g = static_cast<uint32_t>(groups_.size());
    groups_.emplace_back();
  }
  groups_[g].id.assign(id.data(), id.size());
  group_index_.emplace(groups_[g].id, g);
  return g;
}

inline uint32_t FifoCore::AllocSlot() {
  if (!free_slots_.empty()) {
    const uint32_t s = free_slots_.back();
    free_slots_.pop_back();
    return s;
  }
  slots_.emplace_back();
  return static_cast<uint32_t>(slots_.size() - 1);
}

inline void FifoCore::MakeVisible(uint32_t s) {
  FifoSlot& slot = slots_[s];
  HeapErase(s);
  FifoGroup& group = groups_[slot.group];
  group.in_flight.Unlink<&FifoSlot::prev, &FifoSlot::next>(slots_, s);
  --in_flight_;
  ++visible_;
  slot.state = SlotState::kQueued;
  // Back in sequence order among the queued ones.
  uint32_t before = group.queued.head;
  while (before != kNil && slots_[before].serial < slot.serial) before = slots_[before].next;
  group.queued.InsertBefore<&FifoSlot::prev, &FifoSlot::next>(slots_, s, before);
  UpdateReady(slot.group);
}

inline void FifoCore::AppendToGroup(uint32_t s) {
  FifoSlot& slot = slots_[s];
  FifoGroup& group = groups_[slot.group];
  slot.state = SlotState::kQueued;
  group.queued.PushBack<&FifoSlot::prev, &FifoSlot::next>(slots_, s);
  ++visible_;
  UpdateReady(slot.group);
}

inline void FifoCore::UnlinkFromGroup(uint32_t s) {
  groups_[slots_[s].group].queued.Unlink<&FifoSlot::prev, &FifoSlot::next>(slots_, s);
}

inline void FifoCore::UpdateReady(uint32_t g) {
  FifoGroup& group = groups_[g];
  const bool ready = HeadTakeable(g, kNil);
  if (ready && group.list != GroupList::kReady) {
    LinkGroup(g, GroupList::kReady);
  } else if (!ready && group.list == GroupList::kReady) {
    UnlinkGroup(g);
  }
}

inline void FifoCore::LinkGroup(uint32_t g, GroupList list) {
  FifoGroup& group = groups_[g];
  assert(group.list == GroupList::kNone);
  group.list = list;
  (list == GroupList::kReady ? ready_ : idle_)
      .PushBack<&FifoGroup::link_prev, &FifoGroup::link_next>(groups_, g);
}

inline void FifoCore::UnlinkGroup(uint32_t g) {
  FifoGroup& group = groups_[g];
  const bool ready = group.list == GroupList::kReady;
  if (!ready) --idle_groups_;
  (ready ? ready_ : idle_).Unlink<&FifoGroup::link_prev, &FifoGroup::link_next>(groups_, g);
  group.list = GroupList::kNone;
}

inline void FifoCore::HeapPush(uint32_t s) {
  heap_.push_back(s);
  slots_[s].heap_pos = static_cast<uint32_t>(heap_.size() - 1);
  HeapFix(slots_[s].heap_pos);
}

inline void FifoCore::HeapErase(uint32_t s) {
  const uint32_t pos = slots_[s].heap_pos;
  const uint32_t last = static_cast<uint32_t>(heap_.size() - 1);
  if (pos != last) HeapSwap(pos, last);
  heap_.pop_back();
  slots_[s].heap_pos = kNil;
  if (pos < heap_.size()) HeapFix(pos);
}

// Restores the heap order around `pos` after its key changed either way.
inline void FifoCore::HeapFix(uint32_t pos) {
  while (pos > 0 && HeapLess(pos, (pos - 1) / 2)) {
    HeapSwap(pos, (pos - 1) / 2);
    pos = (pos - 1) / 2;
  }
  const uint32_t n = static_cast<uint32_t>(heap_.size());
  for (;;) {
    uint32_t smallest = pos;
    const uint32_t l = 2 * pos + 1, r = 2 * pos + 2;
    if (l < n && HeapLess(l, smallest)) smallest = l;
    if (r < n && HeapLess(r, smallest)) smallest = r;
    if (smallest == pos) return;
    HeapSwap(pos, smallest);
    pos = smallest;
  }
}

}  // namespace riffle::detail

#endif  // RIFFLE_DETAIL_FIFO_CORE_H_
