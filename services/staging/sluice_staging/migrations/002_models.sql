-- Models registered by users; their bytes live at <store>/<workspace>/.models/<model_id>/model.onnx
-- with spec.json beside it. Registering an id again replaces the model (and its created_at).
CREATE TABLE models (
    workspace   text        NOT NULL,
    model_id    text        COLLATE "C" NOT NULL,
    task        text        NOT NULL,
    spec_json   text        NOT NULL,
    size_bytes  bigint      NOT NULL,
    sha256      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace, model_id)
);
