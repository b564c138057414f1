// LeaseTable: who processes which shard, with expiring leases on the table's clock.
#include <algorithm>

#include "riffle/consumer.h"

namespace riffle {

LeaseTable::LeaseTable(Clock* clock) : clock_(clock ? clock : &SystemClock::Default()) {}

std::optional<std::string> LeaseTable::Owner(std::string_view application,
                                             std::string_view shard_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = leases_.find(Key(application, shard_id));
  if (it == leases_.end()) return std::nullopt;
  return it->second.owner;
}

std::map<std::string, std::string> LeaseTable::Owners(std::string_view application) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, std::string> out;
  for (const auto& [key, lease] : leases_) {
    if (key.first == application) out[key.second] = lease.owner;
  }
  return out;
}

void LeaseTable::Heartbeat(std::string_view application, std::string_view worker,
                           absl::Duration ttl) {
  std::lock_guard<std::mutex> lock(mu_);
  workers_[Key(application, worker)] = detail::AddMillis(clock_->NowMillis(), ttl);
}

void LeaseTable::RemoveWorker(std::string_view application, std::string_view worker) {
  std::lock_guard<std::mutex> lock(mu_);
  workers_.erase(Key(application, worker));
}

int LeaseTable::LiveWorkers(std::string_view application) const {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = clock_->NowMillis();
  int n = 0;
  for (const auto& [key, expiry] : workers_) n += key.first == application && expiry > now;
  return n;
}

bool LeaseTable::TryAcquire(std::string_view application, std::string_view shard_id,
                            std::string_view worker, absl::Duration ttl) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = clock_->NowMillis();
  Lease& lease = leases_[Key(application, shard_id)];
  if (!lease.owner.empty() && lease.owner != worker && lease.expires_ms > now) return false;
  lease.owner = std::string(worker);
  lease.expires_ms = detail::AddMillis(now, ttl);
  return true;
}

bool LeaseTable::Renew(std::string_view application, std::string_view shard_id,
                       std::string_view worker, absl::Duration ttl) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = leases_.find(Key(application, shard_id));
  if (it == leases_.end() || it->second.owner != worker) return false;
  it->second.expires_ms = detail::AddMillis(clock_->NowMillis(), ttl);
  return true;
}

void LeaseTable::Release(std::string_view application, std::string_view shard_id,
                         std::string_view worker) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = leases_.find(Key(application, shard_id));
  if (it != leases_.end() && it->second.owner == worker) leases_.erase(it);
}

std::map<std::string, int> LeaseTable::Counts(std::string_view application) const {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = clock_->NowMillis();
  std::map<std::string, int> out;
  for (const auto& [key, expiry] : workers_) {
    if (key.first == application && expiry > now) out[key.second];
  }
  for (const auto& [key, lease] : leases_) {
    if (key.first == application && out.contains(lease.owner)) ++out[lease.owner];
  }
  return out;
}

}  // namespace riffle
