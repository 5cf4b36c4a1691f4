"""Wire contracts of fuli: msgspec Structs for every request, response and bus event."""
