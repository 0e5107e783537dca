-- Host normal form for schemes the url crate does not know.
--
-- For `sftp://Bücher.de/` or `git://bücher.de/r` the url crate hands back
-- the host percent-encoded (`b%c3%bccher.de`), and that was stored, so a
-- purge or a filter of `bücher.de` (`xn--bcher-kva.de`) missed those
-- visits and documents. Hosts are now decoded first (src/browser/urls.rs,
-- `normal_host`). The hosts stored before are recomputed from their urls
-- by that same code, at the next open (`repair_percent_encoded_hosts`,
-- the browser's open-time repair), which this marker asks for once: the
-- repair removes it in the transaction that fixes the rows.

INSERT INTO profile_meta (key, value) VALUES ('hosts_to_decode', '1')
    ON CONFLICT (key) DO NOTHING;
