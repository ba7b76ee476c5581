/* The TSan runtime of gcc 12 (libtsan2) lacks the __tsan_mem* entry points that newer LLVM
 * emits for the Rust library built with -Zsanitizer=thread; route them to the intercepted libc
 * functions, which record the accesses. Linked into the TSan build of the stress test only. */
#include <stddef.h>
#include <string.h>

void *__tsan_memcpy(void *dst, const void *src, size_t n);
void *__tsan_memmove(void *dst, const void *src, size_t n);
void *__tsan_memset(void *dst, int c, size_t n);

void *__tsan_memcpy(void *dst, const void *src, size_t n) { return memcpy(dst, src, n); }
void *__tsan_memmove(void *dst, const void *src, size_t n) { return memmove(dst, src, n); }
void *__tsan_memset(void *dst, int c, size_t n) { return memset(dst, c, n); }
