"""HTTP routes of the JSON API: thin layers over server/query."""
