"""A request given as a dict, as keywords, or both: the fields are merged,
and a field given both ways is refused. Guards against the bug where
keywords beside a dict were silently dropped, which turned a filtered
history list (or purge) into one over every host."""

import pytest

import hydra_core


def record(profile, *hosts):
    visits = [{"url": f"https://{h}/page", "title": h, "visited_at": 1_700_000_000_000 + i} for i, h in enumerate(hosts)]
    profile.visits_record_batch({"visits": visits})


def hosts(page):
    return sorted({item["url"].split("/")[2] for item in page["items"]})


def test_dict_and_keywords_are_merged(profile):
    record(profile, "a.com", "b.com", "a.com")
    assert hosts(profile.history_list({"limit": 50}, host="a.com")) == ["a.com"]
    assert hosts(profile.history_list(limit=50, host="b.com")) == ["b.com"]
    assert hosts(profile.history_list({"host": "b.com"})) == ["b.com"]
    assert hosts(profile.call("history.list", {"limit": 50}, host="a.com")) == ["a.com"]


def test_a_purge_with_dict_and_keywords_stays_narrow(profile):
    record(profile, "a.com", "b.com")
    profile.history_purge({"include_subdomains": True}, host="a.com")
    assert hosts(profile.history_list()) == ["b.com"]


def test_a_field_given_twice_or_keywords_beside_json_text_are_refused(profile):
    record(profile, "a.com", "b.com")
    with pytest.raises(TypeError, match="host"):
        profile.history_purge({"host": "b.com"}, host="a.com")
    with pytest.raises(TypeError):
        profile.history_list('{"limit": 5}', host="a.com")
    assert hosts(profile.history_list()) == ["a.com", "b.com"]


def test_iter_follows_next_cursor_without_skipping_or_repeating(profile):
    record(profile, *[f"h{i}.com" for i in range(7)])
    urls = [v["url"] for v in profile.iter_history_list(limit=3)]
    assert len(urls) == 7 and len(set(urls)) == 7
    assert [v["url"] for v in profile.iterate("history.list", {"limit": 2}, host="h3.com")] == ["https://h3.com/page"]
