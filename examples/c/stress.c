/*
 * Exercises every callback kind of the C ABI many times, for memcheck:
 * the chat model (answers, NULL failures, error objects), a host job
 * handler (that calls back into the library to report progress, and
 * sometimes fails), and the job event callback; plus replacing and
 * unregistering each, bad requests, and closing with callbacks still
 * registered. Every string the library returns is freed exactly once;
 * every string a callback returns is malloc'd (the library frees it).
 *
 *   cc -std=c11 -pthread examples/c/stress.c -Iinclude -Ltarget/debug -lhydra_core -o stress
 *   LD_LIBRARY_PATH=target/debug valgrind --leak-check=full ./stress /tmp/p
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hydra_core.h"

#define ROUNDS 6

static atomic_int events, model_calls, job_calls;
static int failures;

static void check(int ok, const char *what, const char *envelope) {
    if (!ok) {
        failures++;
        fprintf(stderr, "FAILED: %s: %s\n", what, envelope ? envelope : "(null)");
    }
}

/* Calls an operation and expects ok (or the given error code). */
static char *call(uint64_t handle, const char *op, const char *request, const char *want_code) {
    char *out = hydra_call(handle, op, request);
    if (want_code == NULL) {
        check(out && strncmp(out, "{\"ok\":true", 10) == 0, op, out);
    } else {
        char needle[64];
        snprintf(needle, sizeof needle, "\"code\":\"%s\"", want_code);
        check(out && strstr(out, needle) != NULL, op, out);
    }
    return out;
}

static void call_free(uint64_t handle, const char *op, const char *request, const char *want_code) {
    hydra_string_free(call(handle, op, request, want_code));
}

static char *dup_string(const char *s) {
    char *copy = malloc(strlen(s) + 1);
    strcpy(copy, s);
    return copy;
}

/* The value of the first "key":"..." in json, copied into out. */
static void string_field(const char *json, const char *key, char *out, size_t size) {
    char needle[64];
    snprintf(needle, sizeof needle, "\"%s\":\"", key);
    const char *at = strstr(json, needle);
    out[0] = '\0';
    if (at == NULL) return;
    at += strlen(needle);
    size_t n = 0;
    while (at[n] && at[n] != '"' && n + 1 < size) n++;
    memcpy(out, at, n);
    out[n] = '\0';
}

static void on_event(const char *json, void *user_data) {
    (void)user_data;
    if (strstr(json, "\"type\":\"job.updated\"")) atomic_fetch_add(&events, 1);
}

static char *model(const char *json, void *user_data) {
    (void)user_data;
    int n = atomic_fetch_add(&model_calls, 1);
    if (strstr(json, "\"message\"") == NULL) return NULL;
    switch (n % 3) {
        case 0: return dup_string("{\"content\":\"a reply from C\",\"model\":\"stress\",\"tokens\":4}");
        case 1: return dup_string("{\"error\":{\"code\":\"timeout\",\"message\":\"model busy\"}}");
        default: return NULL;
    }
}

static char *other_model(const char *json, void *user_data) {
    (void)json;
    (void)user_data;
    atomic_fetch_add(&model_calls, 1);
    return dup_string("{\"content\":\"the replacement model\"}");
}

/* A focused_crawl handler: reports progress through the library, then
 * succeeds or (every third job) fails. */
static char *crawler(const char *json, void *user_data) {
    uint64_t handle = *(uint64_t *)user_data;
    int n = atomic_fetch_add(&job_calls, 1);
    char id[160], request[256];
    string_field(json, "id", id, sizeof id);
    snprintf(request, sizeof request,
             "{\"id\":\"%s\",\"phase\":\"crawling\",\"steps_total\":2,\"steps_completed\":1}", id);
    hydra_string_free(hydra_call(handle, "jobs.progress", request));
    if (n % 3 == 2) return NULL;
    return dup_string("{\"pages\":2,\"from\":\"C\"}");
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "./hydra-c-stress-profile";
    char options[4096], request[512];
    snprintf(options, sizeof options, "{\"profile_dir\":\"%s\",\"workers\":2}", dir);
    char *error = NULL;
    uint64_t handle = hydra_open(options, &error);
    if (handle == 0) {
        fprintf(stderr, "open failed: %s\n", error ? error : "(no details)");
        hydra_string_free(error);
        return 1;
    }
    static uint64_t handle_slot;
    handle_slot = handle;

    hydra_string_free(hydra_set_event_callback(handle, on_event, NULL));
    hydra_string_free(hydra_register_model(handle, model, NULL));
    hydra_string_free(hydra_register_job_handler(handle, "focused_crawl", crawler, &handle_slot));

    char *created = call(handle, "threads.create", "{\"title\":\"stress\"}", NULL);
    char thread[160];
    string_field(created, "id", thread, sizeof thread);
    hydra_string_free(created);

    for (int i = 0; i < ROUNDS; i++) {
        /* Model: one answer, one error object, one NULL, in turn. */
        snprintf(request, sizeof request, "{\"thread_id\":\"%s\",\"message\":\"turn %d\"}", thread, i);
        char *chat = hydra_call(handle, "chat", request);
        check(chat != NULL && (strncmp(chat, "{\"ok\":true", 10) == 0 || strstr(chat, "\"ok\":false")),
              "chat", chat);
        hydra_string_free(chat);

        /* Job handler, waited for. */
        char *queued = call(handle, "refresh.focused_crawl", "{\"query\":\"rust\"}", NULL);
        char job[160];
        string_field(queued, "job_id", job, sizeof job);
        hydra_string_free(queued);
        snprintf(request, sizeof request, "{\"id\":\"%s\",\"timeout_ms\":60000}", job);
        char *waited = call(handle, "jobs.wait", request, NULL);
        check(strstr(waited, "\"status\":\"succeeded\"") || strstr(waited, "\"status\":\"failed\""),
              "jobs.wait", waited);
        hydra_string_free(waited);

        /* Ordinary writes and reads, and refusals. */
        snprintf(request, sizeof request, "{\"url\":\"https://stress.example/%d\",\"title\":\"t%d\"}", i, i);
        call_free(handle, "visits.record", request, NULL);
        call_free(handle, "history.list", "{\"query\":\"stress\",\"limit\":5}", NULL);
        call_free(handle, "visits.record", "{\"url\":\"not a url\"}", "invalid_argument");
        call_free(handle, "nope.nope", "{}", "unknown_operation");
        call_free(handle, "threads.get", "{\"id\":", "invalid_json");
    }

    /* Replace the model, then unregister everything: chat needs a reply,
     * focused_crawl has no handler. */
    hydra_string_free(hydra_register_model(handle, other_model, NULL));
    snprintf(request, sizeof request, "{\"thread_id\":\"%s\",\"message\":\"again\"}", thread);
    call_free(handle, "chat", request, NULL);
    hydra_string_free(hydra_register_model(handle, NULL, NULL));
    hydra_string_free(hydra_register_job_handler(handle, "focused_crawl", NULL, NULL));
    call_free(handle, "refresh.focused_crawl", "{}", "no_handler");

    /* Close with the event callback still registered. */
    hydra_string_free(hydra_close(handle, NULL));
    hydra_string_free(hydra_set_event_callback(handle, NULL, NULL));

    int want_jobs = ROUNDS, got_jobs = atomic_load(&job_calls);
    check(got_jobs == want_jobs, "every job ran its handler once", NULL);
    check(atomic_load(&model_calls) == ROUNDS + 1, "every chat turn asked the model", NULL);
    check(atomic_load(&events) >= 2 * ROUNDS, "job events arrived", NULL);
    printf("C stress: %d model calls, %d jobs, %d events, %d failures\n", atomic_load(&model_calls),
           got_jobs, atomic_load(&events), failures);
    return failures == 0 ? 0 : 1;
}
