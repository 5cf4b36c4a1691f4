-- Every event updates its member's row. On a full page the new version goes to another page
-- and needs its own members_pkey entry; with a fifth of each page kept free it stays on its
-- page (a HOT update) and the index is not touched. Pages written from now on keep the room;
-- existing ones once they are rewritten. A table grown by events gets the room from pruned old
-- versions anyway, a bulk load (COPY, a programme's members moved in) leaves none.
ALTER TABLE points.members SET (fillfactor = 80);
