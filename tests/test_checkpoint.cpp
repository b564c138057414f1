// Checkpoint stores: exact round trips, argument errors, and the file store's durability
// across a restart (the store destroyed and recreated on the same directory) with no
// half-written or temporary file left behind.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "fmt/format.h"
#include "riffle/checkpoint_store.h"
#include "riffle/status.h"

namespace {

std::string TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "riffle-ckpt-XXXXXX").string();
  REQUIRE(mkdtemp(pattern.data()) != nullptr);
  return pattern;
}

void RoundTrip(riffle::CheckpointStore& store) {
  auto none = store.GetCheckpoint("billing", "shardId-000000000000");
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());
  REQUIRE(store.PutCheckpoint("billing", "shardId-000000000000", "4123").ok());
  REQUIRE(store.PutCheckpoint("billing", "shardId-000000000001", riffle::kShardEndCheckpoint).ok());
  REQUIRE(store.PutCheckpoint("audit", "shardId-000000000000", "4999").ok());
  REQUIRE(store.PutCheckpoint("billing", "shardId-000000000000", "4124").ok());
  CHECK(**store.GetCheckpoint("billing", "shardId-000000000000") == "4124");
  CHECK(**store.GetCheckpoint("billing", "shardId-000000000001") == "SHARD_END");
  CHECK(**store.GetCheckpoint("audit", "shardId-000000000000") == "4999");
  auto bad = store.PutCheckpoint("bad name", "shardId-000000000000", "1");
  CHECK(riffle::HasErrorName(bad, riffle::kInvalidArgumentException));
  CHECK(riffle::ErrorMessage(bad) ==
        "ApplicationName 'bad name' is invalid: it must be 1 to 128 characters of [a-zA-Z0-9_.-].");
  CHECK(riffle::HasErrorName(store.PutCheckpoint("billing", "shard 0", "1"),
                             riffle::kInvalidArgumentException));
  CHECK(riffle::HasErrorName(store.PutCheckpoint("billing", "s", "a\nb"),
                             riffle::kInvalidArgumentException));
}

}  // namespace

TEST_CASE("the in-memory store keeps checkpoints per application and shard", "[checkpoint]") {
  riffle::InMemoryCheckpointStore store;
  RoundTrip(store);
}

TEST_CASE("the file store survives a restart and never leaves a partial file", "[checkpoint]") {
  const std::string dir = TempDir();
  {
    riffle::FileCheckpointStore store(dir);
    RoundTrip(store);
    for (int i = 0; i < 200; ++i) {
      REQUIRE(store
                  .PutCheckpoint("billing", fmt::format("shardId-{:012}", i % 7),
                                 fmt::format("{}", 1000 + i))
                  .ok());
    }
  }
  riffle::FileCheckpointStore reopened(dir);
  for (int s = 0; s < 7; ++s) {
    // The last write of shard s was i = 199 - ((199 - s) % 7).
    const int last = 199 - ((199 - s) % 7);
    CHECK(**reopened.GetCheckpoint("billing", fmt::format("shardId-{:012}", s)) ==
          fmt::format("{}", 1000 + last));
  }
  CHECK(**reopened.GetCheckpoint("audit", "shardId-000000000000") == "4999");
  // One file per application and its lock file, no temporary left over.
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"audit.checkpoints", "audit.checkpoints.lock",
                                          "billing.checkpoints", "billing.checkpoints.lock"});
  // A crash between writing the temporary and the rename leaves the old file intact.
  {
    std::ofstream tmp(reopened.PathFor("audit") + ".tmp");
    tmp << "shardId-000000000000 4";  // a half-written temporary
  }
  riffle::FileCheckpointStore after_crash(dir);
  CHECK(**after_crash.GetCheckpoint("audit", "shardId-000000000000") == "4999");
  REQUIRE(after_crash.PutCheckpoint("audit", "shardId-000000000000", "5000").ok());
  CHECK_FALSE(std::filesystem::exists(reopened.PathFor("audit") + ".tmp"));
  riffle::FileCheckpointStore again(dir);
  CHECK(**again.GetCheckpoint("audit", "shardId-000000000000") == "5000");
  std::filesystem::remove_all(dir);
}

TEST_CASE("the file store reports an unwritable directory instead of losing the checkpoint",
          "[checkpoint][errors]") {
  riffle::FileCheckpointStore store("/nonexistent-riffle-dir/x");
  auto s = store.PutCheckpoint("billing", "shardId-000000000000", "1");
  CHECK(riffle::HasErrorName(s, riffle::kInternalFailure));
  CHECK(riffle::ErrorMessage(s) ==
        std::string("open /nonexistent-riffle-dir/x/billing.checkpoints.tmp failed: ") +
            std::strerror(ENOENT));

  // A directory where the file goes is reported too (a put reads the file first), and no
  // temporary is left; the store recovers once the obstacle is gone.
  const std::string dir = TempDir();
  riffle::FileCheckpointStore blocked(dir);
  REQUIRE(blocked.GetCheckpoint("billing", "shardId-000000000000").ok());  // reads no file
  std::filesystem::create_directories(blocked.PathFor("billing") + "/obstacle");
  s = blocked.PutCheckpoint("billing", "shardId-000000000000", "1");
  CHECK(riffle::HasErrorName(s, riffle::kInternalFailure));
  CHECK(riffle::ErrorMessage(s) ==
        fmt::format("read {} failed: {}", blocked.PathFor("billing"), std::strerror(EISDIR)));
  CHECK_FALSE(std::filesystem::exists(blocked.PathFor("billing") + ".tmp"));
  // A file that exists but cannot be read is an error, not an empty table.
  auto unreadable = blocked.GetCheckpoint("billing", "shardId-000000000000");
  CHECK(riffle::HasErrorName(unreadable.status(), riffle::kInternalFailure));
  CHECK(riffle::ErrorMessage(unreadable.status()) ==
        fmt::format("read {} failed: {}", blocked.PathFor("billing"), std::strerror(EISDIR)));
  std::filesystem::remove_all(blocked.PathFor("billing"));
  REQUIRE(blocked.PutCheckpoint("billing", "shardId-000000000000", "2").ok());
  CHECK(**riffle::FileCheckpointStore(dir).GetCheckpoint("billing", "shardId-000000000000") == "2");
  std::filesystem::remove_all(dir);
}

TEST_CASE("DeleteCheckpoint forgets one shard's entry in both stores", "[checkpoint]") {
  const std::string dir = TempDir();
  riffle::FileCheckpointStore file(dir);
  riffle::InMemoryCheckpointStore memory;
  for (riffle::CheckpointStore* store : {static_cast<riffle::CheckpointStore*>(&file),
                                         static_cast<riffle::CheckpointStore*>(&memory)}) {
    REQUIRE(store->PutCheckpoint("billing", "shardId-000000000000", "SHARD_END").ok());
    REQUIRE(store->PutCheckpoint("billing", "shardId-000000000001", "TRIM_HORIZON").ok());
    REQUIRE(store->DeleteCheckpoint("billing", "shardId-000000000000").ok());
    REQUIRE(store->DeleteCheckpoint("billing", "shardId-000000000007").ok());  // none: OK
    CHECK_FALSE(store->GetCheckpoint("billing", "shardId-000000000000")->has_value());
    CHECK(**store->GetCheckpoint("billing", "shardId-000000000001") == "TRIM_HORIZON");
    CHECK(riffle::HasErrorName(store->DeleteCheckpoint("bad name!", "shardId-000000000000"),
                               riffle::kInvalidArgumentException));
  }
  // The file says so after a restart.
  CHECK_FALSE(riffle::FileCheckpointStore(dir)
                  .GetCheckpoint("billing", "shardId-000000000000")
                  ->has_value());
  std::filesystem::remove_all(dir);
}

TEST_CASE("two file stores writing one application keep each other's puts", "[checkpoint]") {
  // Two workers of one application in two processes, each with its own store on a shared
  // directory: here two stores on two threads (the lock file serializes them the same way).
  const std::string dir = TempDir();
  riffle::FileCheckpointStore a(dir);
  riffle::FileCheckpointStore b(dir);
  std::atomic<int> failures{0};
  auto writer = [&](riffle::FileCheckpointStore& store, int shard) {
    for (int i = 1; i <= 200; ++i) {
      if (!store.PutCheckpoint("billing", fmt::format("shardId-{:012}", shard), std::to_string(i))
               .ok()) {
        failures.fetch_add(1);
      }
    }
  };
  std::thread ta(writer, std::ref(a), 0);
  std::thread tb(writer, std::ref(b), 1);
  ta.join();
  tb.join();
  CHECK(failures.load() == 0);
  riffle::FileCheckpointStore reader(dir);
  CHECK(**reader.GetCheckpoint("billing", "shardId-000000000000") == "200");
  CHECK(**reader.GetCheckpoint("billing", "shardId-000000000001") == "200");
  std::filesystem::remove_all(dir);
}

TEST_CASE("the file store reads past blank, malformed and cut-short lines",
          "[checkpoint][regression]") {
  // A blank line used to fail every later call; so did a last line cut before its space.
  const std::string dir = TempDir();
  riffle::FileCheckpointStore writer(dir);
  const std::string path = writer.PathFor("billing");
  {
    std::ofstream out(path, std::ios::binary);
    out << "shardId-000000000000 100\n"
           "\n"
           "   \n"
           "shardId-000000000001 200\r\n"
           "no-checkpoint-here\n"
           "shardId-000000000002 300 and more\n"
           "shardId-000000000003 4";  // cut short: no newline
  }
  {
    riffle::FileCheckpointStore store(dir);
    CHECK(**store.GetCheckpoint("billing", "shardId-000000000000") == "100");
    CHECK(**store.GetCheckpoint("billing", "shardId-000000000001") == "200");
    CHECK_FALSE(store.GetCheckpoint("billing", "shardId-000000000002")->has_value());
    auto cut = store.GetCheckpoint("billing", "shardId-000000000003");
    CHECK(riffle::HasErrorName(cut.status(), riffle::kInvalidCheckpointException));
    CHECK(cut.status().code() == absl::StatusCode::kDataLoss);
    REQUIRE(store.PutCheckpoint("billing", "shardId-000000000004", "500").ok());
  }
  {
    // The put kept the cut line as it was, and dropped the malformed ones.
    riffle::FileCheckpointStore store(dir);
    CHECK(**store.GetCheckpoint("billing", "shardId-000000000004") == "500");
    CHECK(riffle::HasErrorName(store.GetCheckpoint("billing", "shardId-000000000003").status(),
                               riffle::kInvalidCheckpointException));
    REQUIRE(store.PutCheckpoint("billing", "shardId-000000000003", "400").ok());
    CHECK(**store.GetCheckpoint("billing", "shardId-000000000003") == "400");
  }
  std::ifstream in(path, std::ios::binary);
  const std::string contents((std::istreambuf_iterator<char>(in)), {});
  CHECK(contents ==
        "shardId-000000000000 100\n"
        "shardId-000000000001 200\n"
        "shardId-000000000003 400\n"
        "shardId-000000000004 500\n");
  std::filesystem::remove_all(dir);
}
