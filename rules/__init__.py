"""Rule files (`opts/*.isle`, `lower/*.isle`), shipped as package data."""
