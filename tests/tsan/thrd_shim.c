/*
 * thrd_shim.c - linked into every program of a ThreadSanitizer build only
 * (OSY_SANITIZE_THREAD): C11 thrd_create/thrd_join/thrd_detach on top of
 * the pthread functions.
 *
 * Why: librdkafka starts its threads with C11 thrd_create(), and glibc
 * 2.34+ implements that with its internal pthread_create, which TSan does
 * not intercept. Such threads have no TSan state, and the first
 * intercepted call in one (getaddrinfo's realloc, in every broker thread)
 * crashes. Defined in the executable, these win over glibc's for
 * librdkafka, and their threads are created through the intercepted
 * pthread_create.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

int thrd_create(thrd_t *thr, thrd_start_t func, void *arg);
int thrd_join(thrd_t thr, int *res);
int thrd_detach(thrd_t thr);

struct thrd_start {
        thrd_start_t func;
        void *arg;
};

static void *thrd_trampoline(void *p)
{
        struct thrd_start s = *(struct thrd_start *)p;

        free(p);
        return (void *)(intptr_t)s.func(s.arg);
}

int thrd_create(thrd_t *thr, thrd_start_t func, void *arg)
{
        struct thrd_start *s = malloc(sizeof(*s));

        if (!s)
                return thrd_nomem;
        s->func = func;
        s->arg  = arg;
        if (pthread_create((pthread_t *)thr, NULL, thrd_trampoline, s)) {
                free(s);
                return thrd_error;
        }
        return thrd_success;
}

int thrd_join(thrd_t thr, int *res)
{
        void *r;

        if (pthread_join((pthread_t)thr, &r))
                return thrd_error;
        if (res)
                *res = (int)(intptr_t)r;
        return thrd_success;
}

int thrd_detach(thrd_t thr)
{
        return pthread_detach((pthread_t)thr) ? thrd_error : thrd_success;
}
