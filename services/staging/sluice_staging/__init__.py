"""The staging service: batches of input and output, their parts and objects, uploads and expiry;
and the model registry (it owns stored bytes)."""
