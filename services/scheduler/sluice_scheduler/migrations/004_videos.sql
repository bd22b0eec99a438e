-- Video jobs: what a job processes, and how its videos are sampled and cut into segments.
ALTER TABLE jobs ADD COLUMN input_type text NOT NULL DEFAULT 'images';
ALTER TABLE jobs ADD COLUMN max_video_fps double precision NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN video_segment_s double precision NOT NULL DEFAULT 0;
