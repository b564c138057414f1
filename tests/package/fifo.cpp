// Uses riffle::fifo alone from the installed package.
#include <cstdio>

#include "riffle/fifo_queue.h"

int main() {
  auto queue = riffle::FifoQueue::Create({.name = "installed.fifo"});
  if (!queue.ok()) return 1;
  auto sent = (*queue)->SendMessage(
      {.message_group_id = "g", .message_body = "m", .message_deduplication_id = "d"});
  if (!sent.ok()) return 2;
  auto got = (*queue)->ReceiveMessage({.max_number_of_messages = 1});
  if (!got.ok() || got->messages.size() != 1 || got->messages[0].body != "m") return 3;
  std::puts("riffle::fifo consumer: ok");
  return 0;
}
