"""The HTTP transport (aiohttp): Smart HTTP, the LFS APIs and the router in front of the Hub API."""
