/*
 * The smallest complete use of hydra_core from C: open a profile, call an
 * operation two ways, read the envelope, free every string, close.
 *
 *   scripts/install --prefix /tmp/hydra
 *   export PKG_CONFIG_PATH=/tmp/hydra/lib/pkgconfig
 *   cc examples/c/basic.c $(pkg-config --cflags --libs hydra_core) -o basic
 *   ./basic /tmp/some-profile
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hydra_core.h"

static int expect_ok(const char *what, char *envelope) {
    int ok = envelope != NULL && strncmp(envelope, "{\"ok\":true", 10) == 0;
    printf("%s -> %s\n", what, envelope ? envelope : "(null)");
    hydra_string_free(envelope);
    return ok;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "./hydra-c-example-profile";
    char options[4096];
    snprintf(options, sizeof options, "{\"profile_dir\":\"%s\"}", dir);

    char *error = NULL;
    uint64_t handle = hydra_open(options, &error);
    if (handle == 0) {
        fprintf(stderr, "open failed: %s\n", error ? error : "(no details)");
        hydra_string_free(error);
        return 1;
    }
    printf("library %s, handle %llu\n", hydra_version(), (unsigned long long)handle);

    int ok = 1;
    ok &= expect_ok("hydra_call meta.version", hydra_call(handle, "meta.version", "{}"));
    ok &= expect_ok("hydra_profile_info", hydra_profile_info(handle, NULL));

    /* A bad request is an error envelope, never a crash. */
    char *bad = hydra_call(handle, "meta.version", "{\"unexpected\":1}");
    printf("bad request -> %s\n", bad);
    ok &= strstr(bad, "\"code\":\"invalid_argument\"") != NULL;
    hydra_string_free(bad);

    ok &= expect_ok("hydra_close", hydra_close(handle, NULL));

    /* A closed handle answers `closed`. */
    char *closed = hydra_call(handle, "meta.version", NULL);
    ok &= strstr(closed, "\"code\":\"closed\"") != NULL;
    hydra_string_free(closed);

    puts(ok ? "C example: all checks passed" : "C example: a check FAILED");
    return ok ? 0 : 1;
}
