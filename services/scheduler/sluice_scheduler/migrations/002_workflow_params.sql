ALTER TABLE jobs ADD COLUMN workflow_params text NOT NULL DEFAULT '{}';
ALTER TABLE jobs ADD COLUMN image_outputs_to_save text[] NOT NULL DEFAULT '{}';
