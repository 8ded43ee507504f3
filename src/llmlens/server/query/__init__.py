"""Named, parameterised queries over the store, returning plain data."""
