/*
 * check.c - settle, read back, compare with the oracle (see check.h).
 */
#include "check.h"

#include <stdio.h>
#include <stdlib.h>

long e2e_check(struct e2e_stack *s, const struct e2e_world *expected,
               int quiet_ms, int timeout_ms, struct e2e_world *actual,
               char *report, size_t report_size)
{
        struct e2e_world mine = {0};
        struct e2e_world *got = actual ? actual : &mine;
        char err[1024];
        char *state;
        long bad = -1;

        if (e2e_stack_settle(s, quiet_ms, timeout_ms, err, sizeof(err))) {
                snprintf(report, report_size, "pipeline did not settle: %s",
                         err);
                return -1;
        }
        if (!(state = e2e_stack_state(s))) {
                snprintf(report, report_size, "no state from the sandbox");
                return -1;
        }
        if (e2e_world_read(got, expected, state, err, sizeof(err)))
                snprintf(report, report_size, "unreadable state: %s", err);
        else
                bad = (long)e2e_world_diff(expected, got, report, report_size);
        free(state);
        if (!actual)
                e2e_world_free(&mine);
        return bad;
}
