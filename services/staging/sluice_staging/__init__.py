"""The staging service: batches of input and output, their parts and objects, uploads and expiry."""
