/* sim_asan.h - AddressSanitizer poisoning of device memory, or nothing without ASan. Device
 * memory is one host mapping, so ASan alone would not see a copy or a kernel run past one
 * buffer into the next; sim_dev.c poisons the guard bytes after every buffer instead.
 */
#ifndef SL_SIM_ASAN_H
#define SL_SIM_ASAN_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define SIM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIM_ASAN 1
#endif
#endif

#ifdef SIM_ASAN
#include <sanitizer/asan_interface.h>
static inline void sim_poison(void *p, size_t n)
{
	ASAN_POISON_MEMORY_REGION(p, n);
}
static inline void sim_unpoison(void *p, size_t n)
{
	ASAN_UNPOISON_MEMORY_REGION(p, n);
}
#else
static inline void sim_poison(void *p, size_t n)
{
	(void)p, (void)n;
}
static inline void sim_unpoison(void *p, size_t n)
{
	(void)p, (void)n;
}
#endif

#endif /* SL_SIM_ASAN_H */
