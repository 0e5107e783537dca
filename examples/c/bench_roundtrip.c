/*
 * Round-trip cost of `meta.version` through hydra_call from C: call, parse
 * nothing, free. Prints the median of 15 batches of 20,000 calls, in ns per
 * call, as `c_roundtrip_median_ns=<n>`.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "hydra_core.h"

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "./hydra-c-bench-profile";
    char options[4096];
    snprintf(options, sizeof options, "{\"profile_dir\":\"%s\"}", dir);
    uint64_t handle = hydra_open(options, NULL);
    if (handle == 0) {
        fprintf(stderr, "open failed\n");
        return 1;
    }
    enum { BATCHES = 15, CALLS = 20000 };
    double per_call[BATCHES];
    for (int b = 0; b < BATCHES; b++) {
        double start = now_ns();
        for (int i = 0; i < CALLS; i++) {
            hydra_string_free(hydra_call(handle, "meta.version", "{}"));
        }
        per_call[b] = (now_ns() - start) / CALLS;
    }
    qsort(per_call, BATCHES, sizeof per_call[0], cmp);
    printf("c_roundtrip_median_ns=%.0f (min %.0f, max %.0f)\n", per_call[BATCHES / 2], per_call[0], per_call[BATCHES - 1]);
    hydra_string_free(hydra_close(handle, NULL));
    return 0;
}
