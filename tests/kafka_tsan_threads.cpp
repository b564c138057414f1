// ThreadSanitizer builds of test_kafka only. librdkafka runs on C11 threads (thrd_create,
// mtx_lock, cnd_wait from glibc), which GCC 12's ThreadSanitizer does not intercept: a
// thread it did not see start crashes in its first intercepted call, and locks it does not
// see would hide every happens-before edge librdkafka makes. These definitions take
// precedence over glibc's for librdkafka and map each call onto the pthread function that
// ThreadSanitizer intercepts (glibc implements them the same way, on the same types).
#include <pthread.h>
#include <threads.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>

namespace {

struct Start {
  thrd_start_t func;
  void* arg;
};

void* Trampoline(void* p) {
  const Start start = *static_cast<Start*>(p);
  std::free(p);
  return reinterpret_cast<void*>(static_cast<intptr_t>(start.func(start.arg)));
}

int Result(int err) {
  switch (err) {
    case 0:
      return thrd_success;
    case ENOMEM:
      return thrd_nomem;
    case ETIMEDOUT:
      return thrd_timedout;
    case EBUSY:
      return thrd_busy;
    default:
      return thrd_error;
  }
}

pthread_mutex_t* Mutex(mtx_t* m) { return reinterpret_cast<pthread_mutex_t*>(m); }
pthread_cond_t* Cond(cnd_t* c) { return reinterpret_cast<pthread_cond_t*>(c); }

}  // namespace

extern "C" {

int thrd_create(thrd_t* thread, thrd_start_t func, void* arg) {
  auto* start = static_cast<Start*>(std::malloc(sizeof(Start)));
  if (start == nullptr) return thrd_nomem;
  *start = Start{func, arg};
  const int err = pthread_create(thread, nullptr, Trampoline, start);
  if (err != 0) std::free(start);
  return Result(err);
}

int thrd_join(thrd_t thread, int* result) {
  void* value = nullptr;
  const int err = pthread_join(thread, &value);
  if (err == 0 && result != nullptr) *result = static_cast<int>(reinterpret_cast<intptr_t>(value));
  return Result(err);
}

int thrd_detach(thrd_t thread) { return Result(pthread_detach(thread)); }

int mtx_init(mtx_t* m, int type) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  if ((type & mtx_recursive) != 0) pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
  const int err = pthread_mutex_init(Mutex(m), &attr);
  pthread_mutexattr_destroy(&attr);
  return Result(err);
}
int mtx_lock(mtx_t* m) { return Result(pthread_mutex_lock(Mutex(m))); }
int mtx_trylock(mtx_t* m) { return Result(pthread_mutex_trylock(Mutex(m))); }
int mtx_timedlock(mtx_t* __restrict m, const struct timespec* __restrict at) {
  return Result(pthread_mutex_timedlock(Mutex(m), at));
}
int mtx_unlock(mtx_t* m) { return Result(pthread_mutex_unlock(Mutex(m))); }
void mtx_destroy(mtx_t* m) { pthread_mutex_destroy(Mutex(m)); }

int cnd_init(cnd_t* c) { return Result(pthread_cond_init(Cond(c), nullptr)); }
int cnd_signal(cnd_t* c) { return Result(pthread_cond_signal(Cond(c))); }
int cnd_broadcast(cnd_t* c) { return Result(pthread_cond_broadcast(Cond(c))); }
int cnd_wait(cnd_t* c, mtx_t* m) { return Result(pthread_cond_wait(Cond(c), Mutex(m))); }
int cnd_timedwait(cnd_t* __restrict c, mtx_t* __restrict m, const struct timespec* __restrict at) {
  return Result(pthread_cond_timedwait(Cond(c), Mutex(m), at));  // both on CLOCK_REALTIME
}
void cnd_destroy(cnd_t* c) { pthread_cond_destroy(Cond(c)); }

void call_once(once_flag* flag, void (*func)(void)) {
  pthread_once(reinterpret_cast<pthread_once_t*>(flag), func);
}

}  // extern "C"
