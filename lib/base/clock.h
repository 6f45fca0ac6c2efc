/* The local monotonic clock, for deadlines and durations measured inside
 * this process (never compared with another machine's clock). */
#ifndef PL_CLOCK_H
#define PL_CLOCK_H

#include <stdint.h>

/* Microseconds of CLOCK_MONOTONIC. */
uint64_t pl_mono_us(void);

/* Sleeps us microseconds (us > 0), resuming after a signal. */
void pl_sleep_us(int64_t us);

#endif
