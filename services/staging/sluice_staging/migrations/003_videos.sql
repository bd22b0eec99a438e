-- What staging probed in a staged video: a serialized sluice.v1.VideoInfo (NULL for other objects).
ALTER TABLE objects ADD COLUMN video bytea;
