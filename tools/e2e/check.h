/*
 * check.h - the verdict of an end-to-end run: wait until the pipeline has
 * settled, read both platforms back from the sandbox and compare every
 * person with the oracle. The demo and the e2e suite conclude from it.
 */
#ifndef OSY_E2E_CHECK_H
#define OSY_E2E_CHECK_H

#include <stddef.h>

#include "stack.h"
#include "world.h"

/**
 * @brief Settle @p s (e2e_stack_settle() with @p quiet_ms, @p timeout_ms),
 *        read the sandbox's state and diff it against @p expected.
 * @param actual if not NULL, receives what the sandbox holds (free it with
 *        e2e_world_free(), also after an error).
 * @param report receives the differences, one line per person, or the
 *        reason of a failure.
 * @returns the number of people who differ from the oracle (0: all as the
 *          rules say), or -1 when the pipeline did not settle or the state
 *          could not be read.
 */
long e2e_check(struct e2e_stack *s, const struct e2e_world *expected,
               int quiet_ms, int timeout_ms, struct e2e_world *actual,
               char *report, size_t report_size);

#endif /* OSY_E2E_CHECK_H */
