/* The monotonic clock every layer measures intervals with. */
#ifndef PL_CLOCK_H
#define PL_CLOCK_H

#include <stdint.h>

/* Microseconds of CLOCK_MONOTONIC: for intervals and deadlines only. */
uint64_t pl_mono_us(void);

#endif
