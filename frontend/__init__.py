"""deadeye.frontend: Wasm binary decoding, validation and lifting to IR."""
