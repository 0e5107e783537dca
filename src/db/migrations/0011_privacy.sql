-- Issue 10: a host has one normal form. A fully qualified name's trailing
-- dot (`example.com.`) is the same host as `example.com`, so visits stored
-- with it before this version could escape a purge of `example.com`. New
-- visits are stored without it (`browser::urls::normal_host`); this drops
-- it from the rows stored earlier. `rev_host` of `example.com.` is
-- `.moc.elpmaxe.`: dropping its first character gives `moc.elpmaxe.`, the
-- rev_host of `example.com`.
UPDATE history
   SET host = substr(host, 1, length(host) - 1),
       rev_host = substr(rev_host, 2)
 WHERE host LIKE '%.' AND length(host) > 1;
