"""The services a deployment runs: the lazy endpoint (WSGI) and the emulator of the API and SDK.

May import only the core and the API client.
"""
