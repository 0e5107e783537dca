"""Handles are released without an explicit close (finalizer), jobs are
awaited without a timeout, and host callbacks that raise are reported, not
lost."""

import gc
import logging
import threading
import time

import pytest

import hydra_core


def test_a_dropped_profile_is_closed_so_it_reopens(tmp_path):
    p = hydra_core.Profile.open(tmp_path)
    p.threads_create(title="kept")
    del p
    gc.collect()
    with hydra_core.Profile.open(tmp_path) as again:
        assert again.threads_list()["items"][0]["title"] == "kept"


def test_context_manager_closes(tmp_path):
    with hydra_core.Profile.open(tmp_path) as p:
        p.meta_version()
    assert p.handle == 0
    hydra_core.Profile.open(tmp_path).close()


def test_jobs_wait_needs_no_timeout_and_python_handlers_run_meanwhile(profile):
    started = threading.Event()

    def crawl(job):
        started.set()
        time.sleep(0.2)
        profile.jobs_progress(id=job["id"], steps_total=2, steps_completed=1)
        return {"pages": 2, "query": job["payload"]["query"]}

    profile.register_job_handler("focused_crawl", crawl)
    job_id = profile.refresh_focused_crawl(query="rail")["job_id"]
    job = profile.jobs.wait(job_id)
    assert started.is_set()
    assert job["status"] == "succeeded" and job["result"] == {"pages": 2, "query": "rail"}


def test_jobs_wait_with_a_timeout_raises_timeout_error(profile):
    release = threading.Event()
    profile.register_job_handler("focused_crawl", lambda job: release.wait(5) and {"done": True})
    job_id = profile.refresh_focused_crawl()["job_id"]
    with pytest.raises(hydra_core.TimeoutError):
        profile.jobs.wait(job_id, timeout_ms=50)
    release.set()
    assert profile.jobs.wait(job_id)["status"] == "succeeded"


def test_a_handler_that_raises_fails_its_job_and_is_logged(profile, caplog):
    def broken(job):
        raise ValueError("no network")

    profile.register_job_handler("focused_crawl", broken)
    with caplog.at_level(logging.ERROR, logger="hydra_core"):
        job = profile.jobs.wait(profile.refresh_focused_crawl()["job_id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "internal" and "ValueError" in job["error"]["message"]
    assert any("job handler" in r.getMessage() and r.exc_info for r in caplog.records)


def test_a_model_that_raises_is_an_error_envelope_and_a_hydra_error_keeps_its_code(profile, caplog):
    profile.register_model(lambda req: {"content": "echo: " + req["message"]})
    assert profile.chat(message="hi")["assistant_message"]["content"] == "echo: hi"
    profile.register_model(lambda req: 1 / 0)
    with caplog.at_level(logging.ERROR, logger="hydra_core"), pytest.raises(hydra_core.InternalError):
        profile.chat(message="again")
    assert any("model" in r.getMessage() for r in caplog.records)

    def slow(req):
        raise hydra_core.TimeoutError("timeout", "model too slow")

    profile.register_model(slow)
    with pytest.raises(hydra_core.TimeoutError):
        profile.chat(message="third")


def test_an_event_callback_that_raises_is_logged(profile, caplog):
    seen = []

    def sink(event):
        seen.append(event)
        raise RuntimeError("sink broke")

    profile.set_event_callback(sink)
    profile.register_job_handler("focused_crawl", lambda job: {})
    with caplog.at_level(logging.ERROR, logger="hydra_core"):
        profile.jobs.wait(profile.refresh_focused_crawl()["job_id"])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any("event callback" in r.getMessage() for r in caplog.records):
            time.sleep(0.01)
    assert seen and seen[0]["type"] == "job.updated"
    assert any("event callback" in r.getMessage() and r.exc_info for r in caplog.records)
