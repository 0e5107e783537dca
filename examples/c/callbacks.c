/*
 * hydra_core from C with host callbacks: a chat model answering a turn and
 * a job handler running a `focused_crawl` job on a library worker thread.
 * Replies are made with hydra_string_alloc, so the library releases them
 * with its own allocator whatever the host uses. Built through pkg-config:
 *
 *   scripts/install --prefix /tmp/hydra
 *   export PKG_CONFIG_PATH=/tmp/hydra/lib/pkgconfig
 *   cc examples/c/callbacks.c $(pkg-config --cflags --libs hydra_core) -o callbacks
 *   ./callbacks /tmp/some-profile
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hydra_core.h"

#if HYDRA_ABI_VERSION != 1
#error "this example is written for ABI 1 of hydra_core"
#endif

/* The model: answers every turn with a fixed text and names itself. */
static char *model(const char *request_json, void *user_data) {
    int *turns = user_data;
    (void)request_json;
    *turns += 1;
    return hydra_string_alloc("{\"content\":\"Take the 9:04 train.\",\"model\":\"c-example\"}");
}

/* The job handler: gets the Job object, returns its result. */
static char *crawl(const char *job_json, void *user_data) {
    (void)user_data;
    if (strstr(job_json, "\"query\":\"lyon\"") == NULL) {
        return hydra_string_alloc("{\"error\":{\"code\":\"invalid_argument\",\"message\":\"unexpected job\"}}");
    }
    return hydra_string_alloc("{\"pages\":3}");
}

static int failures = 0;

/* Prints an envelope, checks that it holds `expected`, frees it. */
static void check(const char *what, char *envelope, const char *expected) {
    int ok = envelope != NULL && strstr(envelope, expected) != NULL;
    printf("%s %s -> %s\n", ok ? "ok  " : "FAIL", what, envelope ? envelope : "(null)");
    failures += !ok;
    hydra_string_free(envelope);
}

/* The value of "job_id" in an envelope, copied into `out`. */
static void job_id_of(const char *envelope, char *out, size_t size) {
    const char *start = strstr(envelope, "\"job_id\":\"");
    out[0] = '\0';
    if (start == NULL) return;
    start += strlen("\"job_id\":\"");
    size_t len = strcspn(start, "\"");
    if (len >= size) len = size - 1;
    memcpy(out, start, len);
    out[len] = '\0';
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "./hydra-c-callbacks-profile";
    char options[4096];
    snprintf(options, sizeof options, "{\"profile_dir\":\"%s\"}", dir);
    char *error = NULL;
    uint64_t handle = hydra_open(options, &error);
    if (handle == 0) {
        fprintf(stderr, "open failed: %s\n", error ? error : "(no details)");
        hydra_string_free(error);
        return 1;
    }
    printf("hydra_core %s, ABI %d\n", hydra_version(), HYDRA_ABI_VERSION);

    int turns = 0;
    check("register model", hydra_register_model(handle, model, &turns), "\"registered\":true");
    check("chat", hydra_chat(handle, "{\"message\":\"How do I get to Lyon?\"}"), "Take the 9:04 train.");

    check("register handler", hydra_register_job_handler(handle, "focused_crawl", crawl, NULL),
          "\"registered\":true");
    char *queued = hydra_refresh_focused_crawl(handle, "{\"query\":\"lyon\"}");
    char job_id[160];
    job_id_of(queued ? queued : "", job_id, sizeof job_id);
    hydra_string_free(queued);
    char wait[256];
    snprintf(wait, sizeof wait, "{\"id\":\"%s\",\"timeout_ms\":10000}", job_id);
    check("jobs.wait", hydra_jobs_wait(handle, wait), "\"result\":{\"pages\":3}");

    check("close", hydra_close(handle, NULL), "\"closed\":true");
    if (turns != 1) {
        printf("FAIL the model ran %d times\n", turns);
        failures += 1;
    }
    printf("c: %d failed\n", failures);
    return failures ? 1 : 0;
}
