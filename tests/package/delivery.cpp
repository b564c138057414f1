// Uses riffle::delivery alone from the installed package.
#include <cstdio>

#include "riffle/delivery_stream.h"
#include "riffle/sink.h"

int main() {
  riffle::MemorySink sink;
  riffle::DeliveryStreamOptions options;
  options.delivery_stream_name = "installed";
  options.sink = &sink;
  auto ds = riffle::DeliveryStream::Create(std::move(options));
  if (!ds.ok()) return 1;
  if (!(*ds)->PutRecord("hello\n").ok()) return 2;
  if (!(*ds)->Close().ok() || sink.size() != 1) return 3;
  std::puts("riffle::delivery consumer: ok");
  return 0;
}
