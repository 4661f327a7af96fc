-- fillfactor 50 (was 80, 0009): a batch recomputes the values of every person it touches, and persons
-- that arrived together (created by one batch, on the same pages) tend to come back together. At 80 only
-- the first fifth of a page's rows found room for a HOT update (no index entry); the rest moved to new
-- pages and added an entry to both indexes. Measured: one update of 50,000 rows, 500 a statement, made
-- 27% HOT updates at 80 and 95% at 50, and took 10.9 µs a row at 80, 6.1 at 50; afterwards the table
-- was the same size either way (the moved rows had taken new pages), without the indexes' extra entries.
-- Only pages filled from now on get the room; nothing is rewritten.
ALTER TABLE profile_values SET (fillfactor = 50);
