"""Task types: a versioned payload schema and a handler each."""
